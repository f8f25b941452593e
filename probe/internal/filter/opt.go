package filter

import (
	"maps"

	"golang.org/x/net/bpf"
)

// optimize tidies the laid-out code without changing what it computes:
// jumps to a `ja` go straight to its target, and a `ja` to the next
// instruction disappears.
func optimize(a *asm) {
	tidy(a)
	for round := 0; round < 32; round++ {
		vn := valueNumber(a)
		dc := deadCode(a)
		if !vn && !dc {
			break
		}
		tidy(a)
	}
}

func tidy(a *asm) {
	for {
		changed := false
		// next[l] is the first real instruction after label l.
		next := make([]int, a.nlabels)
		for i := range next {
			next[i] = -1
		}
		pending := []label{}
		for i, in := range a.code {
			if in.isLab {
				pending = append(pending, in.lab)
				continue
			}
			for _, l := range pending {
				next[l] = i
			}
			pending = pending[:0]
		}
		follow := func(l label) label {
			for hops := 0; hops < 64; hops++ {
				i := next[l]
				if i < 0 || !a.code[i].isJA() {
					return l
				}
				l = a.code[i].jt
			}
			return l
		}
		for i := range a.code {
			in := &a.code[i]
			switch {
			case in.isCond():
				if t := follow(in.jt); t != in.jt {
					in.jt, changed = t, true
				}
				if f := follow(in.jf); f != in.jf {
					in.jf, changed = f, true
				}
			case in.isJA():
				if t := follow(in.jt); t != in.jt {
					in.jt, changed = t, true
				}
			}
		}
		// Drop a ja whose target label comes before the next instruction.
		out := a.code[:0]
		for i := 0; i < len(a.code); i++ {
			in := a.code[i]
			if in.isJA() {
				j := i + 1
				hit := false
				for ; j < len(a.code) && a.code[j].isLab; j++ {
					if a.code[j].lab == in.jt {
						hit = true
					}
				}
				if hit {
					changed = true
					continue
				}
			}
			out = append(out, in)
		}
		a.code = out
		if dropUnreachable(a) {
			changed = true
		}
		if !changed {
			return
		}
	}
}

// dropUnreachable removes instructions no path reaches (after a return or
// a ja, with no label a live jump targets).
func dropUnreachable(a *asm) bool {
	live := make([]bool, a.nlabels)
	reach := true // the entry is reachable
	keep := make([]bool, len(a.code))
	for i, in := range a.code {
		if in.isLab {
			if live[in.lab] {
				reach = true
			}
			keep[i] = true
			continue
		}
		if !reach {
			continue
		}
		keep[i] = true
		switch {
		case in.isCond():
			live[in.jt], live[in.jf] = true, true
			reach = false
		case in.isJA():
			live[in.jt] = true
			reach = false
		case in.raw.Op&0x07 == clsRET:
			reach = false
		}
	}
	out := a.code[:0]
	dropped := false
	for i, in := range a.code {
		if keep[i] {
			out = append(out, in)
		} else {
			dropped = true
		}
	}
	a.code = out
	return dropped
}

// Value numbering and jump threading, after libpcap's optimizer in spirit
// (not its code): every value a program computes gets a number, equal for
// equal computations (the same load, the same constant, the same
// arithmetic on equal values). Along each path the optimizer knows which
// loads already ran (and so cannot fail any more) and what the jumps taken
// so far say about values. With that it
//   - drops a load whose value the register already holds,
//   - turns a jump whose outcome is known into a ja,
//   - sends a jump straight past code that would only reload known values
//     and take known branches, when the registers it would set are dead
//     where it lands.
// None of these moves or removes a load that could fail, so verdicts on
// short packets stay those of the code as generated.

type vkey struct {
	op   uint16
	k    uint32
	a, b int
}

const (
	vkConst = 0xf000 + iota
	vkLen
	vkPhi
	vkFresh
)

type vnTable struct {
	ids    map[vkey]int
	consts map[int]uint32
	fresh  uint32
}

func (t *vnTable) get(k vkey) int {
	if id, ok := t.ids[k]; ok {
		return id
	}
	id := len(t.ids) + 1
	t.ids[k] = id
	if k.op == vkConst {
		t.consts[id] = k.k
	}
	return id
}

func (t *vnTable) constant(c uint32) int { return t.get(vkey{op: vkConst, k: c}) }

func (t *vnTable) newFresh() int {
	t.fresh++
	return t.get(vkey{op: vkFresh, k: t.fresh})
}

type jfact struct {
	v   int
	jop uint16
	k   uint32
}

type vstate struct {
	a, x  int
	m     [scratchMemory]int
	exact map[int]uint32
	facts map[jfact]bool
	done  map[int]bool // loads that ran on every path here
}

func (s *vstate) clone() *vstate {
	return &vstate{a: s.a, x: s.x, m: s.m, exact: maps.Clone(s.exact), facts: maps.Clone(s.facts), done: maps.Clone(s.done)}
}

// meet is what holds on every incoming path; registers that differ get a
// number of their own for this merge point.
func meet(t *vnTable, at int, ss []*vstate) *vstate {
	r := ss[0].clone()
	phi := func(reg int, vals ...int) int {
		for _, v := range vals[1:] {
			if v != vals[0] {
				return t.get(vkey{op: vkPhi, k: uint32(at), a: reg})
			}
		}
		return vals[0]
	}
	collect := func(f func(*vstate) int) []int {
		out := make([]int, len(ss))
		for i, s := range ss {
			out[i] = f(s)
		}
		return out
	}
	r.a = phi(-1, collect(func(s *vstate) int { return s.a })...)
	r.x = phi(-2, collect(func(s *vstate) int { return s.x })...)
	for i := range r.m {
		r.m[i] = phi(i, collect(func(s *vstate) int { return s.m[i] })...)
	}
	for _, s := range ss[1:] {
		for k, v := range r.exact {
			if w, ok := s.exact[k]; !ok || w != v {
				delete(r.exact, k)
			}
		}
		for k, v := range r.facts {
			if w, ok := s.facts[k]; !ok || w != v {
				delete(r.facts, k)
			}
		}
		for k := range r.done {
			if !s.done[k] {
				delete(r.done, k)
			}
		}
	}
	return r
}

func isPacketLoad(op uint16) bool {
	return op&0x07 == clsLD && (op&0xe0 == mABS || op&0xe0 == mIND) || op == clsLDX|szB|mMSH
}

// ldValue is the value number a load (into A or X) gives under s, and
// whether it reads the packet (and so can fail), without changing s.
func ldValue(t *vnTable, s *vstate, r bpf.RawInstruction) (v int, packet bool) {
	op := r.Op
	switch {
	case op&0x07 == clsLD && op&0xe0 == mABS:
		return t.get(vkey{op: op, k: r.K, a: -1}), r.K < skfADOff
	case op&0x07 == clsLD && op&0xe0 == mIND:
		return t.get(vkey{op: op, k: r.K, a: s.x}), true
	case op == clsLDX|szB|mMSH:
		return t.get(vkey{op: op, k: r.K, a: -1}), true
	case op&0xe0 == mLEN:
		return t.get(vkey{op: vkLen}), false
	case op&0xe0 == mIMM:
		return t.constant(r.K), false
	}
	return s.m[r.K%scratchMemory], false // mMEM
}

// step applies a non-jump instruction to s.
func step(t *vnTable, s *vstate, r bpf.RawInstruction) {
	op := r.Op
	switch {
	case op&0x07 == clsLD || op&0x07 == clsLDX:
		v, packet := ldValue(t, s, r)
		if op&0x07 == clsLD {
			s.a = v
		} else {
			s.x = v
		}
		if packet {
			s.done[v] = true
		}
	case op&0x07 == clsST:
		s.m[r.K%scratchMemory] = s.a
	case op&0x07 == clsSTX:
		s.m[r.K%scratchMemory] = s.x
	case op&0x07 == clsALU:
		b := t.constant(r.K)
		if op&srcX != 0 {
			b = s.x
		}
		ca, aok := t.consts[s.a]
		cb, bok := t.consts[b]
		if aok && (bok || op&0xf0 == aluNEG) {
			if v, ok := fold(op&0xf0, ca, cb); ok {
				s.a = t.constant(v)
				return
			}
		}
		if op&0xf0 == aluNEG {
			b = 0
		}
		s.a = t.get(vkey{op: op & 0xf0, a: s.a, b: b})
	case op == clsMISC|miscTAX:
		s.x = s.a
	case op == clsMISC|miscTXA:
		s.a = s.x
	}
}

func fold(op uint16, a, b uint32) (uint32, bool) {
	switch op {
	case aluADD:
		return a + b, true
	case aluSUB:
		return a - b, true
	case aluMUL:
		return a * b, true
	case aluDIV:
		if b == 0 {
			return 0, false
		}
		return a / b, true
	case aluMOD:
		if b == 0 {
			return 0, false
		}
		return a % b, true
	case aluAND:
		return a & b, true
	case aluOR:
		return a | b, true
	case aluXOR:
		return a ^ b, true
	case aluLSH:
		return shl(a, b), true
	case aluRSH:
		return shr(a, b), true
	case aluNEG:
		return -a, true
	}
	return 0, false
}

// decide evaluates a conditional jump under s, if s determines it.
func decide(t *vnTable, s *vstate, r bpf.RawInstruction) (outcome, known bool) {
	jop := r.Op & 0xf0
	var k uint32
	if r.Op&srcX != 0 {
		c, ok := t.consts[s.x]
		if !ok {
			return false, false
		}
		k = c
	} else {
		k = r.K
	}
	a, ok := t.consts[s.a]
	if !ok {
		a, ok = s.exact[s.a]
	}
	if ok {
		switch jop {
		case jmpJEQ:
			return a == k, true
		case jmpJGT:
			return a > k, true
		case jmpJGE:
			return a >= k, true
		case jmpJSET:
			return a&k != 0, true
		}
	}
	if o, ok := s.facts[jfact{s.a, jop, k}]; ok {
		return o, true
	}
	return false, false
}

// maxFacts bounds the jump outcomes a state remembers. Every state is a
// copy, so along a long chain of tests (a list of hundreds of hosts) the
// facts made optimising cost the square of the chain's length; knowing
// less only leaves a jump in place.
const maxFacts = 128

// edgeState is s after the jump r went the way outcome says.
func edgeState(t *vnTable, s *vstate, r bpf.RawInstruction, outcome bool) *vstate {
	e := s.clone()
	if r.Op&srcX != 0 || len(e.facts) >= maxFacts {
		return e
	}
	e.facts[jfact{s.a, r.Op & 0xf0, r.K}] = outcome
	if r.Op&0xf0 == jmpJEQ && outcome {
		e.exact[s.a] = r.K
	}
	return e
}

const (
	liveA = 1
	liveX = 2
)

func usesDefs(r bpf.RawInstruction) (uses, defs int) {
	op := r.Op
	switch op & 0x07 {
	case clsLD:
		defs = liveA
		if op&0xe0 == mIND {
			uses = liveX
		}
	case clsLDX:
		defs = liveX
	case clsST:
		uses = liveA
	case clsSTX:
		uses = liveX
	case clsALU:
		uses, defs = liveA, liveA
		if op&srcX != 0 && op&0xf0 != aluNEG {
			uses |= liveX
		}
	case clsJMP:
		if op&0xf0 != jmpJA {
			uses = liveA
			if op&srcX != 0 {
				uses |= liveX
			}
		}
	case clsRET:
		if op&0x18 == retA {
			uses = liveA
		}
	case clsMISC:
		if op&0xf8 == miscTXA {
			uses, defs = liveX, liveA
		} else {
			uses, defs = liveA, liveX
		}
	}
	return
}

// indexCode numbers the real instructions of a.code: idx[i] is the code
// index of real instruction i, and labelAt[l] the number of the first real
// instruction after label l (len(idx) for a label at the end, -1 for one
// not placed).
func indexCode(a *asm) (idx, labelAt []int) {
	labelAt = make([]int, a.nlabels)
	for i := range labelAt {
		labelAt[i] = -1
	}
	var pending []label
	for ci, in := range a.code {
		if in.isLab {
			pending = append(pending, in.lab)
			continue
		}
		for _, l := range pending {
			labelAt[l] = len(idx)
		}
		pending = pending[:0]
		idx = append(idx, ci)
	}
	for _, l := range pending {
		labelAt[l] = len(idx)
	}
	return idx, labelAt
}

// maxThreadHops bounds how far one jump is threaded in a round: a long
// chain of known tests (`tcp or tcp or ...`) is then skipped in several
// rounds instead of at a cost growing with the square of its length.
const maxThreadHops = 256

// valueNumber runs one round of the value-based optimizations and
// reports whether it changed anything.
func valueNumber(a *asm) bool {
	idx, labelAt := indexCode(a)
	n := len(idx)
	if n == 0 {
		return false
	}
	ins := func(i int) *insn { return &a.code[idx[i]] }
	target := func(l label) int { return labelAt[l] }

	// Liveness of A and X, backwards (every jump is forward).
	liveIn := make([]int, n+1)
	for i := n - 1; i >= 0; i-- {
		in := ins(i)
		var out int
		switch {
		case in.isCond():
			out = liveIn[target(in.jt)] | liveIn[target(in.jf)]
		case in.isJA():
			out = liveIn[target(in.jt)]
		case in.raw.Op&0x07 == clsRET:
		default:
			out = liveIn[i+1]
		}
		u, d := usesDefs(in.raw)
		liveIn[i] = u | out&^d
	}

	// States, forwards.
	t := &vnTable{ids: map[vkey]int{}, consts: map[int]uint32{}}
	incoming := make([][]*vstate, n)
	init := &vstate{exact: map[int]uint32{}, facts: map[jfact]bool{}, done: map[int]bool{}}
	// Nothing is assumed of the registers and memory at the start: the
	// kernel refuses a program that reads memory it has not written.
	init.a, init.x = t.newFresh(), t.newFresh()
	for i := range init.m {
		init.m[i] = t.newFresh()
	}
	incoming[0] = []*vstate{init}
	states := make([]*vstate, n)
	for i := 0; i < n; i++ {
		if len(incoming[i]) == 0 {
			continue
		}
		var s *vstate
		if len(incoming[i]) == 1 {
			s = incoming[i][0]
		} else {
			s = meet(t, i, incoming[i])
		}
		incoming[i] = nil
		states[i] = s
		in := ins(i)
		switch {
		case in.isCond():
			if o, ok := decide(t, s, in.raw); ok {
				l := in.jf
				if o {
					l = in.jt
				}
				incoming[target(l)] = append(incoming[target(l)], s)
				continue
			}
			incoming[target(in.jt)] = append(incoming[target(in.jt)], edgeState(t, s, in.raw, true))
			incoming[target(in.jf)] = append(incoming[target(in.jf)], edgeState(t, s, in.raw, false))
		case in.isJA():
			incoming[target(in.jt)] = append(incoming[target(in.jt)], s)
		case in.raw.Op&0x07 == clsRET:
		default:
			ns := s.clone()
			step(t, ns, in.raw)
			incoming[i+1] = append(incoming[i+1], ns)
		}
	}

	changed := false
	del := make([]bool, n)
	landing := map[int]label{} // instruction index -> new label before it

	// thread follows from instruction i under sim (which it changes) as
	// long as the code only reloads values known to load and takes known
	// branches.
	thread := func(i int, sim *vstate) int {
		start := i
		dirty := 0
		for hops := 0; hops < maxThreadHops && i < n; hops++ {
			in := ins(i)
			switch {
			case in.isJA():
				i = target(in.jt)
				continue
			case in.isCond():
				o, ok := decide(t, sim, in.raw)
				if !ok {
					goto stop
				}
				if o {
					i = target(in.jt)
				} else {
					i = target(in.jf)
				}
				continue
			case in.raw.Op&0x07 == clsRET, in.raw.Op&0x07 == clsST, in.raw.Op&0x07 == clsSTX:
				goto stop
			}
			if isPacketLoad(in.raw.Op) {
				if v, _ := ldValue(t, sim, in.raw); !sim.done[v] {
					goto stop
				}
			}
			if op := in.raw.Op; op&0x07 == clsALU && (op&0xf0 == aluDIV || op&0xf0 == aluMOD) && op&srcX != 0 {
				goto stop
			}
			{
				before := *sim
				step(t, sim, in.raw)
				if sim.a != before.a {
					dirty |= liveA
				}
				if sim.x != before.x {
					dirty |= liveX
				}
			}
			i++
		}
	stop:
		if i == start || i >= n || liveIn[i]&dirty != 0 {
			return start
		}
		return i
	}

	for i := 0; i < n; i++ {
		s := states[i]
		if s == nil {
			continue
		}
		in := ins(i)
		switch {
		case in.isCond():
			if o, ok := decide(t, s, in.raw); ok {
				l := in.jf
				if o {
					l = in.jt
				}
				*in = insn{raw: stmt(clsJMP|jmpJA, 0), jt: l, jf: noLabel}
				changed = true
				continue
			}
			for _, br := range []bool{true, false} {
				l := &in.jt
				if !br {
					l = &in.jf
				}
				if to := thread(target(*l), edgeState(t, s, in.raw, br)); to != target(*l) {
					nl, ok := landing[to]
					if !ok {
						nl = a.newLabel()
						landing[to] = nl
					}
					*l = nl
					changed = true
				}
			}
		case in.isJA():
			if to := thread(target(in.jt), s.clone()); to != target(in.jt) {
				nl, ok := landing[to]
				if !ok {
					nl = a.newLabel()
					landing[to] = nl
				}
				in.jt = nl
				changed = true
			}
		case isPacketLoad(in.raw.Op) || in.raw.Op&0x07 == clsLD || in.raw.Op&0x07 == clsLDX:
			v, _ := ldValue(t, s, in.raw)
			if in.raw.Op&0x07 == clsLDX && v == s.x || in.raw.Op&0x07 == clsLD && v == s.a {
				del[i] = true
				changed = true
			}
		case in.raw.Op&0x07 == clsST:
			if s.m[in.raw.K%scratchMemory] == s.a {
				del[i] = true
				changed = true
			}
		}
	}
	if !changed {
		return false
	}
	out := make([]insn, 0, len(a.code)+len(landing))
	ri := 0
	for _, in := range a.code {
		if in.isLab {
			out = append(out, in)
			continue
		}
		if l, ok := landing[ri]; ok {
			out = append(out, insn{isLab: true, lab: l})
		}
		if !del[ri] {
			out = append(out, in)
		}
		ri++
	}
	a.code = out
	return true
}

// deadCode removes instructions that only set a register or a scratch
// slot nobody reads afterwards. Packet loads stay even when their value
// is dead: a load past the end of the packet decides the verdict.
func deadCode(a *asm) bool {
	idx, labelAt := indexCode(a)
	n := len(idx)
	// Bits: 0 A, 1 X, 2.. M[0..15].
	const bA, bX = 1, 2
	mbit := func(k uint32) uint32 { return 4 << (k % scratchMemory) }
	live := make([]uint32, n+1)
	del := make([]bool, n)
	changed := false
	for i := n - 1; i >= 0; i-- {
		in := &a.code[idx[i]]
		var out uint32
		switch {
		case in.isCond():
			out = live[labelAt[in.jt]] | live[labelAt[in.jf]]
		case in.isJA():
			out = live[labelAt[in.jt]]
		case in.raw.Op&0x07 == clsRET:
		default:
			out = live[i+1]
		}
		r := in.raw
		var use, def uint32
		pure := false
		switch op := r.Op; {
		case op&0x07 == clsLD && op&0xe0 == mMEM:
			use, def, pure = mbit(r.K), bA, true
		case op&0x07 == clsLD && (op&0xe0 == mIMM || op&0xe0 == mLEN):
			def, pure = bA, true
		case op&0x07 == clsLD && op&0xe0 == mABS && r.K >= skfADOff:
			def, pure = bA, true
		case op&0x07 == clsLD && op&0xe0 == mIND:
			use, def = bX, bA
		case op&0x07 == clsLD:
			def = bA
		case op&0x07 == clsLDX && op&0xe0 == mMEM:
			use, def, pure = mbit(r.K), bX, true
		case op&0x07 == clsLDX && (op&0xe0 == mIMM || op&0xe0 == mLEN):
			def, pure = bX, true
		case op&0x07 == clsLDX:
			def = bX
		case op&0x07 == clsST:
			use, def, pure = bA, mbit(r.K), true
		case op&0x07 == clsSTX:
			use, def, pure = bX, mbit(r.K), true
		case op&0x07 == clsALU:
			use, def, pure = bA, bA, true
			if op&srcX != 0 && op&0xf0 != aluNEG {
				use |= bX
				if op&0xf0 == aluDIV || op&0xf0 == aluMOD {
					pure = false // dividing by a zero X ends the program
				}
			}
		case op&0x07 == clsJMP && op&0xf0 != jmpJA:
			use = bA
			if op&srcX != 0 {
				use |= bX
			}
		case op&0x07 == clsRET && op&0x18 == retA:
			use = bA
		case op == clsMISC|miscTAX:
			use, def, pure = bA, bX, true
		case op == clsMISC|miscTXA:
			use, def, pure = bX, bA, true
		}
		if pure && out&def == 0 {
			del[i] = true
			changed = true
			live[i] = out
			continue
		}
		live[i] = use | out&^def
	}
	if !changed {
		return false
	}
	out := a.code[:0]
	ri := 0
	for _, in := range a.code {
		if in.isLab {
			out = append(out, in)
			continue
		}
		if !del[ri] {
			out = append(out, in)
		}
		ri++
	}
	a.code = out
	return true
}

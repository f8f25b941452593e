package filter

import (
	"errors"
	"fmt"

	"golang.org/x/net/bpf"
)

// label names a place in the code being laid out; every jump goes to a
// label placed later, so all jumps are forward, as classic BPF requires.
type label int

const noLabel label = -1

// insn is an instruction whose jump targets are still labels.
type insn struct {
	raw    bpf.RawInstruction
	jt, jf label // conditional jumps: both; ja: jt
	isLab  bool  // a label marker, not an instruction
	lab    label
}

func (i *insn) isCond() bool {
	return !i.isLab && i.raw.Op&0x07 == clsJMP && i.raw.Op&0xf0 != jmpJA
}

func (i *insn) isJA() bool {
	return !i.isLab && i.raw.Op&0x07 == clsJMP && i.raw.Op&0xf0 == jmpJA
}

type asm struct {
	code    []insn
	nlabels int
	placed  int // label markers in code
	// abort, when set, is where a load outside the packet goes instead
	// of ending the program: in a rule list, the next rule. Loads are
	// then preceded by a bounds check.
	abort label
}

func (a *asm) newLabel() label {
	a.nlabels++
	return label(a.nlabels - 1)
}

func (a *asm) place(l label) {
	a.code = append(a.code, insn{isLab: true, lab: l})
	a.placed++
}

// size is the number of instructions laid out so far.
func (a *asm) size() int { return len(a.code) - a.placed }

func (a *asm) stmts(s []bpf.RawInstruction) {
	for _, r := range s {
		a.code = append(a.code, insn{raw: r, jt: noLabel, jf: noLabel})
	}
}

func (a *asm) ja(l label) {
	a.code = append(a.code, insn{raw: stmt(clsJMP|jmpJA, 0), jt: l, jf: noLabel})
}

// node lays out n: control reaches tl if it holds, fl if not.
func (a *asm) node(n node, tl, fl label) {
	if a.size() > maxUnoptimized {
		return // the caller refuses the program; stop growing it
	}
	switch n := n.(type) {
	case nAnd:
		mid := a.newLabel()
		a.node(n.a, mid, fl)
		a.place(mid)
		a.node(n.b, tl, fl)
	case nOr:
		mid := a.newLabel()
		a.node(n.a, tl, mid)
		a.place(mid)
		a.node(n.b, tl, fl)
	case nNot:
		a.node(n.a, fl, tl)
	case *nTest:
		if a.abort != noLabel {
			a.checkedStmts(n.stmts)
		} else {
			a.stmts(n.stmts)
		}
		a.code = append(a.code, insn{raw: stmt(clsJMP|n.jop, n.k), jt: tl, jf: fl})
	case nConst:
		if n {
			a.ja(tl)
		} else {
			a.ja(fl)
		}
	default:
		panic(fmt.Sprintf("filter: unknown node %T", n))
	}
}

// Scratch slots the bounds checks of rule lists use.
const (
	regSaveX = scratchMemory - 3
	regEnd   = scratchMemory - 2
)

// condTo emits a conditional jump that continues on true and goes to
// fail on false.
func (a *asm) condTo(jop uint16, k uint32, fail label) {
	cont := a.newLabel()
	a.code = append(a.code, insn{raw: stmt(clsJMP|jop, k), jt: cont, jf: fail})
	a.place(cont)
}

// checkedStmts emits s with a bounds check before every packet load, so
// that a short packet goes to a.abort. A is dead before every load the
// generator emits (loads overwrite it, or the value was stored), which is
// what lets the checks use it; X is kept for indirect loads.
func (a *asm) checkedStmts(s []bpf.RawInstruction) {
	lenA := stmt(clsLD|szW|mLEN, 0)
	for _, r := range s {
		size := uint32(4)
		switch r.Op & 0x18 {
		case szH:
			size = 2
		case szB:
			size = 1
		}
		switch {
		case r.Op&0x07 == clsLD && r.Op&0xe0 == mABS && r.K < skfADOff:
			if r.K+size < r.K {
				a.ja(a.abort)
				continue
			}
			a.stmts([]bpf.RawInstruction{lenA})
			a.condTo(jmpJGE|srcK, r.K+size, a.abort)
		case r.Op == clsLDX|szB|mMSH:
			if r.K+1 < r.K {
				a.ja(a.abort)
				continue
			}
			a.stmts([]bpf.RawInstruction{lenA})
			a.condTo(jmpJGE|srcK, r.K+1, a.abort)
		case r.Op&0x07 == clsLD && r.Op&0xe0 == mIND:
			a.stmts([]bpf.RawInstruction{
				stmt(clsSTX, regSaveX),
				stmt(clsMISC|miscTXA, 0),
				stmt(clsALU|aluADD|srcK, r.K+size),
				stmt(clsST, regEnd),
				lenA,
				stmt(clsLDX|szW|mMEM, regEnd),
			})
			a.condTo(jmpJGE|srcX, 0, a.abort)
			a.stmts([]bpf.RawInstruction{stmt(clsLDX|szW|mMEM, regSaveX)})
		}
		a.stmts([]bpf.RawInstruction{r})
	}
}

// errTooLarge is an expression whose code, laid out, is over
// maxUnoptimized.
var errTooLarge = errors.New("expression too large")

// compileRules is CompileRules.
func compileRules(rules []Rule, mode Mode, defaultSnap uint32) ([]bpf.Instruction, error) {
	raw, err := compileRaw(rules, mode, defaultSnap)
	if err != nil {
		return nil, err
	}
	out := make([]bpf.Instruction, len(raw))
	for i, r := range raw {
		out[i] = r.Disassemble()
	}
	return out, nil
}

func compileRaw(rules []Rule, mode Mode, defaultSnap uint32) ([]bpf.RawInstruction, error) {
	a, err := layout(rules, mode, defaultSnap)
	if err != nil {
		return nil, err
	}
	optimize(a)
	prog, err := a.resolve()
	if err != nil {
		return nil, err
	}
	if len(prog) > MaxInstructions {
		return nil, fmt.Errorf("filter: program has %d instructions, over the kernel's limit of %d", len(prog), MaxInstructions)
	}
	if err := verify(prog); err != nil {
		return nil, fmt.Errorf("filter: internal error, the program would be refused: %w", err)
	}
	return prog, nil
}

// layout parses the rules and lays them out as unoptimised code.
func layout(rules []Rule, mode Mode, defaultSnap uint32) (*asm, error) {
	if mode != Offline && mode != Live {
		return nil, fmt.Errorf("filter: unknown mode %d", int(mode))
	}
	a := &asm{abort: noLabel}
	// One rule returning 0 otherwise can let the kernel end the program
	// on a short packet; in a rule list a short packet must fall through
	// to the next rule instead, as if the rule did not match.
	checked := len(rules) > 1 || defaultSnap != 0
	start := a.newLabel()
	for i, r := range rules {
		n, g, err := parseExpression(r.Expr, mode)
		if err != nil {
			if len(rules) > 1 {
				return nil, fmt.Errorf("rule %d: %w", i+1, err)
			}
			return nil, err
		}
		a.place(start)
		if g.usesVarOff {
			a.stmts([]bpf.RawInstruction{
				stmt(clsLD|mIMM, 0), stmt(clsST, regLinkPL), stmt(clsST, regLinkType),
			})
		}
		acc := a.newLabel()
		start = a.newLabel()
		if checked {
			a.abort = start
		}
		a.node(n, acc, start)
		if a.size() > maxUnoptimized {
			err := fmt.Errorf("filter: %w: over %d instructions before optimisation, 4 times the kernel's limit of %d", errTooLarge, maxUnoptimized, MaxInstructions)
			if len(rules) > 1 {
				return nil, fmt.Errorf("rule %d: %w", i+1, err)
			}
			return nil, err
		}
		a.place(acc)
		a.stmts([]bpf.RawInstruction{stmt(clsRET|retK, r.Snap)})
	}
	a.place(start)
	a.stmts([]bpf.RawInstruction{stmt(clsRET|retK, defaultSnap)})
	return a, nil
}

// resolve turns labels into jump offsets. A conditional jump reaches at
// most 255 instructions ahead; a farther target goes through a `ja`
// placed right after the jump (nothing falls through a conditional jump,
// so the slot is free).
func (a *asm) resolve() ([]bpf.RawInstruction, error) {
	for iter := 0; ; iter++ {
		if iter > 64 {
			return nil, fmt.Errorf("filter: jump layout does not converge")
		}
		pos := make([]int, a.nlabels)
		n := 0
		for _, in := range a.code {
			if in.isLab {
				pos[in.lab] = n
			} else {
				n++
			}
		}
		var fixed []insn
		changed := false
		idx := 0
		for _, in := range a.code {
			if in.isLab {
				fixed = append(fixed, in)
				continue
			}
			if in.isCond() {
				far := func(l label) bool { return pos[l]-(idx+1) > 255 }
				var tramp []insn
				if far(in.jt) {
					l := a.newLabel()
					tramp = append(tramp, insn{isLab: true, lab: l}, insn{raw: stmt(clsJMP|jmpJA, 0), jt: in.jt, jf: noLabel})
					in.jt = l
				}
				if far(in.jf) {
					l := a.newLabel()
					tramp = append(tramp, insn{isLab: true, lab: l}, insn{raw: stmt(clsJMP|jmpJA, 0), jt: in.jf, jf: noLabel})
					in.jf = l
				}
				fixed = append(fixed, in)
				fixed = append(fixed, tramp...)
				if tramp != nil {
					changed = true
				}
				idx++
				continue
			}
			fixed = append(fixed, in)
			idx++
		}
		a.code = fixed
		if changed {
			continue
		}
		prog := make([]bpf.RawInstruction, 0, n)
		idx = 0
		for _, in := range a.code {
			if in.isLab {
				continue
			}
			r := in.raw
			switch {
			case in.isCond():
				r.Jt = uint8(pos[in.jt] - (idx + 1))
				r.Jf = uint8(pos[in.jf] - (idx + 1))
			case in.isJA():
				r.K = uint32(pos[in.jt] - (idx + 1))
			}
			prog = append(prog, r)
			idx++
		}
		return prog, nil
	}
}

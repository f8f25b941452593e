package filter

// optimize tidies the laid-out code without changing what it computes:
// jumps to a `ja` go straight to its target, and a `ja` to the next
// instruction disappears.
func optimize(a *asm) {
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

package filter

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/net/bpf"
)

// vmIns is a checked, pre-decoded classic BPF instruction for the
// userspace interpreter.
type vmIns struct {
	op     uint16
	jt, jf uint8
	k      uint32
}

// vlanInfo is the out-of-band VLAN tag an AF_PACKET socket reports; the
// Matcher runs offline programs, the tests run live ones with it.
type vlanInfo struct {
	present bool
	tci     uint16
}

// ancillary is what a load from SKF_AD_OFF+off reads; ok is false for the
// ancillary fields we do not model, which end the program like the kernel's
// unknown ones.
func (vl vlanInfo) ancillary(off uint32) (v uint32, ok bool) {
	switch off {
	case skfVLANTagPrsnt:
		if vl.present {
			return 1, true
		}
		return 0, true
	case skfVLANTag:
		return uint32(vl.tci), true
	}
	return 0, false
}

func newVM(prog []bpf.RawInstruction) ([]vmIns, error) {
	if len(prog) == 0 || len(prog) > MaxInstructions {
		return nil, fmt.Errorf("filter: program length %d out of range", len(prog))
	}
	out := make([]vmIns, len(prog))
	for i, r := range prog {
		if r.Op&0x07 == clsJMP {
			if r.Op&0xf0 == jmpJA {
				if int(r.K) >= len(prog)-i-1 {
					return nil, fmt.Errorf("filter: instruction %d jumps out of the program", i)
				}
			} else if int(r.Jt) >= len(prog)-i-1 || int(r.Jf) >= len(prog)-i-1 {
				return nil, fmt.Errorf("filter: instruction %d jumps out of the program", i)
			}
		}
		if (r.Op&0x07 == clsST || r.Op&0x07 == clsSTX || r.Op == clsLD|szW|mMEM || r.Op == clsLDX|szW|mMEM) && r.K >= scratchMemory {
			return nil, fmt.Errorf("filter: instruction %d uses scratch memory %d", i, r.K)
		}
		out[i] = vmIns{op: r.Op, jt: r.Jt, jf: r.Jf, k: r.K}
	}
	if last := prog[len(prog)-1]; last.Op&0x07 != clsRET {
		return nil, fmt.Errorf("filter: program does not end with ret")
	}
	return out, nil
}

// run interprets prog on frame. wireLen is what `len` reads. A load
// outside the frame, a division by zero or an unknown instruction ends
// the program with 0, as in the kernel.
func run(prog []vmIns, frame []byte, wireLen int, vl vlanInfo) uint32 {
	var a, x uint32
	var mem [scratchMemory]uint32
	n := uint32(len(frame))
	for pc := 0; pc < len(prog); pc++ {
		in := &prog[pc]
		switch in.op {
		case clsLD | szW | mABS:
			k := in.k
			if k >= skfADOff {
				v, ok := vl.ancillary(k - skfADOff)
				if !ok {
					return 0
				}
				a = v
				continue
			}
			if k > n || n-k < 4 {
				return 0
			}
			a = binary.BigEndian.Uint32(frame[k:])
		case clsLD | szH | mABS:
			k := in.k
			if k >= skfADOff {
				return 0
			}
			if k > n || n-k < 2 {
				return 0
			}
			a = uint32(binary.BigEndian.Uint16(frame[k:]))
		case clsLD | szB | mABS:
			k := in.k
			if k >= skfADOff {
				v, ok := vl.ancillary(k - skfADOff)
				if !ok {
					return 0
				}
				a = v
				continue
			}
			if k >= n {
				return 0
			}
			a = uint32(frame[k])
		case clsLD | szW | mIND:
			k := x + in.k
			if k > n || n-k < 4 {
				return 0
			}
			a = binary.BigEndian.Uint32(frame[k:])
		case clsLD | szH | mIND:
			k := x + in.k
			if k > n || n-k < 2 {
				return 0
			}
			a = uint32(binary.BigEndian.Uint16(frame[k:]))
		case clsLD | szB | mIND:
			k := x + in.k
			if k >= n {
				return 0
			}
			a = uint32(frame[k])
		case clsLD | szW | mLEN:
			a = uint32(wireLen)
		case clsLD | mIMM:
			a = in.k
		case clsLD | szW | mMEM:
			a = mem[in.k]
		case clsLDX | szW | mIMM:
			x = in.k
		case clsLDX | szW | mMEM:
			x = mem[in.k]
		case clsLDX | szW | mLEN:
			x = uint32(wireLen)
		case clsLDX | szB | mMSH:
			if in.k >= n {
				return 0
			}
			x = uint32(frame[in.k]&0xf) << 2
		case clsST:
			mem[in.k] = a
		case clsSTX:
			mem[in.k] = x
		case clsALU | aluADD | srcK:
			a += in.k
		case clsALU | aluSUB | srcK:
			a -= in.k
		case clsALU | aluMUL | srcK:
			a *= in.k
		case clsALU | aluDIV | srcK:
			if in.k == 0 {
				return 0
			}
			a /= in.k
		case clsALU | aluMOD | srcK:
			if in.k == 0 {
				return 0
			}
			a %= in.k
		case clsALU | aluAND | srcK:
			a &= in.k
		case clsALU | aluOR | srcK:
			a |= in.k
		case clsALU | aluXOR | srcK:
			a ^= in.k
		case clsALU | aluLSH | srcK:
			a = shl(a, in.k)
		case clsALU | aluRSH | srcK:
			a = shr(a, in.k)
		case clsALU | aluADD | srcX:
			a += x
		case clsALU | aluSUB | srcX:
			a -= x
		case clsALU | aluMUL | srcX:
			a *= x
		case clsALU | aluDIV | srcX:
			if x == 0 {
				return 0
			}
			a /= x
		case clsALU | aluMOD | srcX:
			if x == 0 {
				return 0
			}
			a %= x
		case clsALU | aluAND | srcX:
			a &= x
		case clsALU | aluOR | srcX:
			a |= x
		case clsALU | aluXOR | srcX:
			a ^= x
		case clsALU | aluLSH | srcX:
			a = shl(a, x)
		case clsALU | aluRSH | srcX:
			a = shr(a, x)
		case clsALU | aluNEG:
			a = -a
		case clsJMP | jmpJA:
			pc += int(in.k)
		case clsJMP | jmpJEQ | srcK:
			pc += jump(a == in.k, in)
		case clsJMP | jmpJGT | srcK:
			pc += jump(a > in.k, in)
		case clsJMP | jmpJGE | srcK:
			pc += jump(a >= in.k, in)
		case clsJMP | jmpJSET | srcK:
			pc += jump(a&in.k != 0, in)
		case clsJMP | jmpJEQ | srcX:
			pc += jump(a == x, in)
		case clsJMP | jmpJGT | srcX:
			pc += jump(a > x, in)
		case clsJMP | jmpJGE | srcX:
			pc += jump(a >= x, in)
		case clsJMP | jmpJSET | srcX:
			pc += jump(a&x != 0, in)
		case clsRET | retK:
			return in.k
		case clsRET | retA:
			return a
		case clsMISC | miscTAX:
			x = a
		case clsMISC | miscTXA:
			a = x
		default:
			return 0
		}
	}
	return 0
}

func jump(c bool, in *vmIns) int {
	if c {
		return int(in.jt)
	}
	return int(in.jf)
}

// Shifts by 32 or more give 0, as x/net/bpf's VM does.
func shl(a, s uint32) uint32 {
	if s >= 32 {
		return 0
	}
	return a << s
}

func shr(a, s uint32) uint32 {
	if s >= 32 {
		return 0
	}
	return a >> s
}

// verify checks what the kernel's classic BPF checker checks, so that a
// compiler bug shows up as an error here rather than as EINVAL from
// SO_ATTACH_FILTER: length, jumps inside the program, a final return,
// known opcodes, and no scratch slot read before every path wrote it.
func verify(prog []bpf.RawInstruction) error {
	if _, err := newVM(prog); err != nil {
		return err
	}
	n := len(prog)
	const all = uint32(1)<<scratchMemory - 1
	// in[i]: slots written on every path to i; all = not reached yet.
	in := make([]uint32, n)
	reached := make([]bool, n)
	for i := range in {
		in[i] = all
	}
	reached[0], in[0] = true, 0
	flow := func(to int, set uint32) {
		if !reached[to] {
			reached[to], in[to] = true, set
			return
		}
		in[to] &= set
	}
	for i, r := range prog {
		if !validOp(r.Op) {
			return fmt.Errorf("filter: instruction %d: unknown opcode %#x", i, r.Op)
		}
		if !reached[i] {
			continue
		}
		set := in[i]
		switch {
		case r.Op == clsLD|szW|mMEM || r.Op == clsLDX|szW|mMEM:
			if set&(1<<r.K) == 0 {
				return fmt.Errorf("filter: instruction %d reads M[%d] before it is written", i, r.K)
			}
		case r.Op&0x07 == clsST || r.Op&0x07 == clsSTX:
			set |= 1 << r.K
		}
		switch {
		case r.Op&0x07 == clsRET:
		case r.Op == clsJMP|jmpJA:
			flow(i+1+int(r.K), set)
		case r.Op&0x07 == clsJMP:
			flow(i+1+int(r.Jt), set)
			flow(i+1+int(r.Jf), set)
		default:
			flow(i+1, set)
		}
	}
	return nil
}

func validOp(op uint16) bool {
	switch op & 0x07 {
	case clsLD:
		switch op & 0xe0 {
		case mABS, mIND:
			return op&0x18 != 0x18
		case mIMM, mLEN, mMEM:
			return op&0x18 == szW
		}
	case clsLDX:
		return op == clsLDX|szW|mIMM || op == clsLDX|szW|mMEM || op == clsLDX|szW|mLEN || op == clsLDX|szB|mMSH
	case clsST, clsSTX:
		return op&^0x07 == 0
	case clsALU:
		a := op & 0xf0
		return a <= aluXOR && op&^(0xf0|srcX|0x07) == 0 && !(a == aluNEG && op&srcX != 0)
	case clsJMP:
		j := op & 0xf0
		return j <= jmpJSET && op&^(0xf0|srcX|0x07) == 0 && !(j == jmpJA && op&srcX != 0)
	case clsRET:
		return op == clsRET|retK || op == clsRET|retA
	case clsMISC:
		return op == clsMISC|miscTAX || op == clsMISC|miscTXA
	}
	return false
}

package filter

import (
	"bufio"
	"fmt"
	"io"

	"golang.org/x/net/bpf"
)

// DumpFormat is one of tcpdump's program listings.
type DumpFormat int

const (
	// DumpAsm is tcpdump -d: one readable instruction a line.
	DumpAsm DumpFormat = iota + 1
	// DumpC is tcpdump -dd: a C array initialiser.
	DumpC
	// DumpDecimal is tcpdump -ddd: the count, then "code jt jf k" a line.
	DumpDecimal
)

// Dump writes prog to w in tcpdump's format f.
func Dump(w io.Writer, prog []bpf.Instruction, f DumpFormat) error {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return fmt.Errorf("filter: dump: %w", err)
	}
	bw := bufio.NewWriter(w)
	switch f {
	case DumpAsm:
		for i, r := range raw {
			fmt.Fprintln(bw, asmLine(r, i))
		}
	case DumpC:
		for _, r := range raw {
			fmt.Fprintf(bw, "{ 0x%x, %d, %d, 0x%08x },\n", r.Op, r.Jt, r.Jf, r.K)
		}
	case DumpDecimal:
		fmt.Fprintln(bw, len(raw))
		for _, r := range raw {
			fmt.Fprintf(bw, "%d %d %d %d\n", r.Op, r.Jt, r.Jf, r.K)
		}
	default:
		return fmt.Errorf("filter: dump: unknown format %d", int(f))
	}
	return bw.Flush()
}

// asmLine renders one instruction as tcpdump -d does (libpcap's
// bpf_image), so listings can be compared by eye.
func asmLine(r bpf.RawInstruction, n int) string {
	var op, operand string
	k := r.K
	ext := func(k uint32) string {
		switch k - skfADOff {
		case skfVLANTag:
			return "vlan_tci"
		case skfVLANTagPrsnt:
			return "vlanp"
		}
		return fmt.Sprintf("%d", int32(k))
	}
	switch r.Op {
	case clsRET | retK:
		op, operand = "ret", fmt.Sprintf("#%d", k)
	case clsRET | retA:
		op = "ret"
	case clsLD | szW | mABS:
		op, operand = "ld", fmt.Sprintf("[%s]", ext(k))
	case clsLD | szH | mABS:
		op, operand = "ldh", fmt.Sprintf("[%s]", ext(k))
	case clsLD | szB | mABS:
		op, operand = "ldb", fmt.Sprintf("[%s]", ext(k))
	case clsLD | szW | mLEN:
		op, operand = "ld", "#pktlen"
	case clsLD | szW | mIND:
		op, operand = "ld", fmt.Sprintf("[x + %d]", k)
	case clsLD | szH | mIND:
		op, operand = "ldh", fmt.Sprintf("[x + %d]", k)
	case clsLD | szB | mIND:
		op, operand = "ldb", fmt.Sprintf("[x + %d]", k)
	case clsLD | mIMM:
		op, operand = "ld", fmt.Sprintf("#0x%x", k)
	case clsLDX | mIMM:
		op, operand = "ldx", fmt.Sprintf("#0x%x", k)
	case clsLDX | szB | mMSH:
		op, operand = "ldxb", fmt.Sprintf("4*([%d]&0xf)", k)
	case clsLD | mMEM:
		op, operand = "ld", fmt.Sprintf("M[%d]", k)
	case clsLDX | mMEM:
		op, operand = "ldx", fmt.Sprintf("M[%d]", k)
	case clsST:
		op, operand = "st", fmt.Sprintf("M[%d]", k)
	case clsSTX:
		op, operand = "stx", fmt.Sprintf("M[%d]", k)
	case clsJMP | jmpJA:
		return fmt.Sprintf("(%03d) %-8s %d", n, "ja", n+1+int(k))
	case clsMISC | miscTAX:
		op = "tax"
	case clsMISC | miscTXA:
		op = "txa"
	}
	if r.Op&0x07 == clsJMP {
		names := map[uint16]string{jmpJEQ: "jeq", jmpJGT: "jgt", jmpJGE: "jge", jmpJSET: "jset"}
		op = names[r.Op&0xf0]
		operand = fmt.Sprintf("#0x%x", k)
		if r.Op&srcX != 0 {
			operand = "x"
		}
		return fmt.Sprintf("(%03d) %-8s %-16s jt %d\tjf %d", n, op, operand, n+1+int(r.Jt), n+1+int(r.Jf))
	}
	if r.Op&0x07 == clsALU {
		names := map[uint16]string{aluADD: "add", aluSUB: "sub", aluMUL: "mul", aluDIV: "div", aluMOD: "mod",
			aluAND: "and", aluOR: "or", aluXOR: "xor", aluLSH: "lsh", aluRSH: "rsh", aluNEG: "neg"}
		op = names[r.Op&0xf0]
		if r.Op&0xf0 != aluNEG {
			operand = fmt.Sprintf("#%d", k)
			if r.Op&srcX != 0 {
				operand = "x"
			}
		}
	}
	if op == "" {
		op, operand = "unimp", fmt.Sprintf("0x%x", r.Op)
	}
	return fmt.Sprintf("(%03d) %-8s %s", n, op, operand)
}

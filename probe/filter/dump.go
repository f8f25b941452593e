package filter

import (
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
	return dump(w, prog, f)
}

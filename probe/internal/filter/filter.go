// Package filter compiles capture filters written in tcpdump's syntax
// (pcap-filter(7)) into classic BPF programs, without cgo and without
// libpcap, and evaluates them quickly in userspace.
//
// The same expression compiles to two programs. The Offline program reads
// Ethernet frames as stored in a capture file, VLAN tags inside the frame.
// The Live program is for an AF_PACKET socket: there the kernel strips the
// outer VLAN tag and reports it out of band, and libpcap tests it with the
// kernel's BPF extensions; the Live program does the same, so that a rule
// means on the socket what tcpdump -i makes it mean.
//
// Verdicts are held to libpcap's: the tests run libpcap's own program (from
// tcpdump -ddd) and ours on a corpus of frames and require the same answers.
package filter

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Mode selects how VLAN tags are seen by the program.
type Mode int

const (
	// Offline programs read frames as stored: VLAN tags are in the frame.
	Offline Mode = iota
	// Live programs run on an AF_PACKET socket, where the kernel reports
	// the outermost VLAN tag out of band (SKF_AD_VLAN_TAG_PRESENT and
	// SKF_AD_VLAN_TAG), as libpcap's live programs expect.
	Live
)

func (m Mode) String() string {
	switch m {
	case Offline:
		return "offline"
	case Live:
		return "live"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// MaxSnap is the snap length that means "the whole packet", as tcpdump's
// default snap length.
const MaxSnap = 262144

// MaxInstructions is the kernel's limit on a classic BPF program
// (BPF_MAXINSNS); Compile refuses to produce anything longer.
const MaxInstructions = 4096

// MaxNesting bounds how deep parentheses, brackets, nots and minus signs
// may nest: far beyond what a person writes, and it keeps the parser's
// recursion small.
const MaxNesting = 256

// MaxExprLen is the longest expression Compile reads, in bytes. Parsing is
// linear in the length, and an expression this long already compiles to
// far more than MaxInstructions.
const MaxExprLen = 64 << 10

// maxUnoptimized bounds the code laid out before optimisation. The
// optimiser's cost grows faster than linearly, and code over this bound
// would not come down to MaxInstructions anyway except for a contrived
// expression (the same test repeated), so it is refused before
// optimising: a list of a thousand ports fails at once, not after seconds.
const maxUnoptimized = 4 * MaxInstructions

// SyntaxError reports an expression that is outside the grammar, or a bad
// value (address, range, number) inside it.
type SyntaxError struct {
	Expr string // the whole expression
	Pos  int    // byte offset in Expr where the problem starts
	Msg  string // what was found and what was expected
}

func (e *SyntaxError) Error() string {
	msg := e.Msg
	if len(msg) > 2*maxQuoted {
		msg = msg[:2*maxQuoted] + "..."
	}
	if len(e.Expr) <= maxQuoted {
		return fmt.Sprintf("filter %q: at offset %d: %s", e.Expr, e.Pos, msg)
	}
	// A long expression is quoted only around the problem, so that the
	// error stays readable (and small) whatever its length.
	from, to := max(0, e.Pos-maxQuoted/2), min(len(e.Expr), e.Pos+maxQuoted/2)
	return fmt.Sprintf("filter of %d bytes: at offset %d (near %q): %s", len(e.Expr), e.Pos, e.Expr[from:to], msg)
}

// maxQuoted is the most of an expression an error message quotes.
const maxQuoted = 200

// Compile compiles expr into a program that returns snaplen for a packet
// the expression accepts and 0 for one it rejects. An empty expression
// accepts every packet. snaplen 0 means MaxSnap.
func Compile(expr string, mode Mode, snaplen uint32) ([]bpf.Instruction, error) {
	if snaplen == 0 {
		snaplen = MaxSnap
	}
	return CompileRules([]Rule{{Expr: expr, Snap: snaplen}}, mode, 0)
}

// Rule is one ring rule: packets that Expr accepts are kept, cut to Snap
// bytes; Snap 0 discards them.
type Rule struct {
	Expr string
	Snap uint32
}

// CompileRules compiles an ordered rule list into ONE program whose return
// value is the Snap of the first rule that accepts the packet, or
// defaultSnap if none does (0 = discard). This is how ring rules with
// packet slicing run in the kernel: the socket keeps min(return, length)
// bytes and drops the packet on 0.
//
// Each rule means what its expression alone means to libpcap, including
// for a packet too short for a field the rule reads: that rule does not
// match, and the next one is tried (a lone filter program would end with 0
// there, so the rule program checks bounds before its loads).
//
// Errors name the rule (by index) and wrap a *SyntaxError.
func CompileRules(rules []Rule, mode Mode, defaultSnap uint32) ([]bpf.Instruction, error) {
	return compileRules(rules, mode, defaultSnap)
}

package filter

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/presscap/presscap/internal/testing/testtool"
)

// The oracle is Debian's tcpdump: `tcpdump -ddd` prints the program
// libpcap compiles. Offline programs come from reading an empty EN10MB
// capture file (-r), live ones from a live Ethernet device (-i), where
// libpcap uses the kernel's VLAN extensions.

var emptyPcapOnce sync.Once
var emptyPcapPath string
var emptyPcapErr error

func TestMain(m *testing.M) {
	code := m.Run()
	if emptyPcapPath != "" {
		os.RemoveAll(filepath.Dir(emptyPcapPath))
	}
	os.Exit(code)
}

// emptyPcap writes a capture file with only a header: link type EN10MB,
// snap length 262144.
func emptyPcap(t testing.TB) string {
	t.Helper()
	emptyPcapOnce.Do(func() {
		dir, err := os.MkdirTemp("", "presscap-filter-")
		if err != nil {
			emptyPcapErr = err
			return
		}
		hdr := make([]byte, 24)
		binary.LittleEndian.PutUint32(hdr[0:], 0xa1b2c3d4)
		binary.LittleEndian.PutUint16(hdr[4:], 2)
		binary.LittleEndian.PutUint16(hdr[6:], 4)
		binary.LittleEndian.PutUint32(hdr[16:], 262144)
		binary.LittleEndian.PutUint32(hdr[20:], 1)
		emptyPcapPath = filepath.Join(dir, "empty.pcap")
		emptyPcapErr = os.WriteFile(emptyPcapPath, hdr, 0o644)
	})
	if emptyPcapErr != nil {
		t.Fatalf("writing empty pcap: %v", emptyPcapErr)
	}
	return emptyPcapPath
}

// errRejectsAll is libpcap's answer for an expression its optimizer proves
// can never match; the program is then "ret #0".
const rejectsAll = "expression rejects all packets"

// libpcapProgram returns libpcap's program for expr, read from tcpdump
// -ddd; source is ["-r", file] or ["-i", device].
func libpcapProgram(t testing.TB, source []string, expr string) ([]bpf.RawInstruction, error) {
	t.Helper()
	args := append([]string{"-ddd"}, source...)
	args = append(args, "--", expr)
	cmd := exec.Command(testtool.Path(t, "tcpdump", "tcpdump"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if strings.Contains(stderr.String(), rejectsAll) {
			return []bpf.RawInstruction{{Op: clsRET | retK, K: 0}}, nil
		}
		return nil, fmt.Errorf("tcpdump %q: %v: %s", expr, err, strings.TrimSpace(stderr.String()))
	}
	return parseDDD(stdout.String())
}

// parseDDD reads tcpdump -ddd output: a count, then "code jt jf k" lines.
func parseDDD(s string) ([]bpf.RawInstruction, error) {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) == 0 {
		return nil, fmt.Errorf("empty -ddd output")
	}
	n, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || n != len(lines)-1 {
		return nil, fmt.Errorf("-ddd output: count %q does not match %d lines", lines[0], len(lines)-1)
	}
	prog := make([]bpf.RawInstruction, n)
	for i, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 4 {
			return nil, fmt.Errorf("-ddd line %d: %q", i+1, l)
		}
		var v [4]uint64
		for j := range f {
			if v[j], err = strconv.ParseUint(f[j], 10, 32); err != nil {
				return nil, fmt.Errorf("-ddd line %d: %q: %v", i+1, l, err)
			}
		}
		prog[i] = bpf.RawInstruction{Op: uint16(v[0]), Jt: uint8(v[1]), Jf: uint8(v[2]), K: uint32(v[3])}
	}
	return prog, nil
}

// vmVerdict runs a program with x/net/bpf's VM. That VM lacks `neg`,
// which libpcap's unoptimized programs use; for those it falls back to
// this package's interpreter, and where both run they must agree.
func vmVerdict(t testing.TB, prog []bpf.RawInstruction) func([]byte) (int, error) {
	t.Helper()
	ins := make([]bpf.Instruction, len(prog))
	hasNeg := false
	for i, r := range prog {
		ins[i] = r.Disassemble()
		if _, ok := ins[i].(bpf.NegateA); ok {
			hasNeg = true
		}
	}
	interp, err := newVM(prog)
	if err != nil {
		t.Fatalf("interpreter: %v", err)
	}
	if hasNeg {
		return func(b []byte) (int, error) { return int(run(interp, b, len(b), vlanInfo{})), nil }
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatalf("bpf.NewVM: %v", err)
	}
	return func(b []byte) (int, error) {
		v, err := vm.Run(b)
		if err != nil {
			return 0, err
		}
		if w := run(interp, b, len(b), vlanInfo{}); uint32(v) != w {
			return 0, fmt.Errorf("x/net/bpf VM returns %d, our interpreter %d", v, w)
		}
		return v, nil
	}
}

func TestParseDDD(t *testing.T) {
	p, err := parseDDD("2\n40 0 0 12\n6 0 0 262144\n")
	if err != nil || len(p) != 2 || p[0].Op != 0x28 || p[0].K != 12 || p[1].K != 262144 {
		t.Fatalf("parseDDD = %v, %v", p, err)
	}
	for _, bad := range []string{"", "3\n40 0 0 12\n", "1\n40 0 12\n", "1\nx 0 0 1\n"} {
		if _, err := parseDDD(bad); err == nil {
			t.Errorf("parseDDD(%q) succeeded", bad)
		}
	}
}

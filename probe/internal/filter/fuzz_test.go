package filter

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/net/bpf"
)

// FuzzCompile feeds arbitrary text to the parser and compiler in both
// modes: no panic, and every program they return is one the kernel takes
// (assembles, at most 4096 instructions, jumps forward inside the
// program, ends with ret) and runs without error.
func FuzzCompile(f *testing.F) {
	for _, e := range diffExprs {
		f.Add(e)
	}
	for _, c := range badExprs {
		f.Add(c.expr)
	}
	for _, s := range []string{"", "(((((", "not not not", "vlan and vlan and vlan and vlan and vlan",
		"ip[ip[ip[ip[0]]]] = 1", "host ::", "ether host ff:ff:ff:ff:ff:ff", "\\\\", "port 65535 or 0",
		"tcp[13] & 0xff = 0xff and len > 0xffffffff", "ip[0:4] = 4294967295", "portrange 0-65535"} {
		f.Add(s)
	}
	// The bounds: nesting one past the limit, an address run, and code
	// refused before optimising.
	for _, s := range []string{nested("(", "tcp", ")", MaxNesting+1), strings.Repeat("not ", MaxNesting+1) + "tcp",
		"len = " + strings.Repeat("-", MaxNesting+1) + "1", nested("ip[", "0", "]", MaxNesting+1) + " = 1",
		"port " + nested("(", "80", ")", MaxNesting+1), "vlan " + nested("(", "1", ")", MaxNesting+1),
		"host " + strings.Repeat("a:", 200), "host " + strings.Repeat("1.", 200),
		strings.TrimSuffix(strings.Repeat("tcp or ", 1500), " or ")} {
		f.Add(s)
	}
	frames := buildCorpus(7)[:60]
	f.Fuzz(func(t *testing.T, expr string) {
		for _, mode := range []Mode{Offline, Live} {
			prog, err := Compile(expr, mode, 0)
			if err != nil {
				var se *SyntaxError
				if errors.As(err, &se) && (se.Pos < 0 || se.Pos > len(expr)) {
					t.Fatalf("%q: error position %d outside the expression", expr, se.Pos)
				}
				continue
			}
			raw, err := bpf.Assemble(prog)
			if err != nil {
				t.Fatalf("%q: bpf.Assemble: %v", expr, err)
			}
			if msg := checkProgram(raw); msg != "" {
				t.Fatalf("%q: %s", expr, msg)
			}
			vm, _ := newVM(raw)
			for _, fr := range frames {
				data, vl := asSeenLive(fr.data)
				run(vm, data, len(data), vl)
			}
			rules, err := CompileRules([]Rule{{Expr: expr, Snap: 64}, {Expr: "tcp", Snap: 0}}, mode, MaxSnap)
			if err != nil {
				if len(prog) < MaxInstructions/3 && !errors.Is(err, errTooLarge) {
					t.Fatalf("%q compiles alone but not as a rule: %v", expr, err)
				}
				continue
			}
			raw, err = bpf.Assemble(rules)
			if err != nil {
				t.Fatalf("%q rules: bpf.Assemble: %v", expr, err)
			}
			if msg := checkProgram(raw); msg != "" {
				t.Fatalf("%q rules: %s", expr, msg)
			}
		}
	})
}

// FuzzMatcher runs arbitrary frames through the Matcher and x/net/bpf's
// VM for the same programs: same verdicts, no panic.
func FuzzMatcher(f *testing.F) {
	for _, fr := range buildCorpus(8)[:200] {
		f.Add(fr.data)
	}
	exprs := []string{
		"host 10.0.0.1 and udp portrange 10000-20000",
		"vlan 100 and tcp[tcpflags] & tcp-syn != 0",
		"ip6 and icmp6[0] = 128 or arp",
		"tcp[(tcp[12] >> 4) * 4] = 0x70 or ether[len - 1] = 0x67",
		"ip[0] / (ip[1] & 3) = 7 or ip[0] % (ip[1] & 3) = 1",
		"not (port 53 or 80) and net 10.0.0.0/8",
	}
	type pair struct {
		m  *Matcher
		vm *bpf.VM
	}
	var ps []pair
	for _, e := range exprs {
		m, err := NewMatcher(e)
		if err != nil {
			f.Fatal(err)
		}
		p, _ := Compile(e, Offline, 1)
		vm, err := bpf.NewVM(p)
		if err != nil {
			f.Fatal(err)
		}
		ps = append(ps, pair{m, vm})
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		for i, p := range ps {
			v, err := p.vm.Run(frame)
			if err != nil {
				t.Fatal(err)
			}
			if (v != 0) != p.m.Match(frame) {
				t.Fatalf("%q on % x: VM %d, Matcher %v", exprs[i], frame, v, p.m.Match(frame))
			}
		}
	})
}

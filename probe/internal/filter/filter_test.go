package filter

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/net/bpf"
)

// badExprs are outside the grammar or carry a bad value; pos is where the
// error must point.
var badExprs = []struct {
	expr string
	pos  int
	msg  string // part of the message
}{
	{"host", 4, "found end of expression"},
	{"tcp port 70000", 9, "over 65535"},
	{"portrange 1-70000", 10, "bad port"},
	{"net 10.0.0.1/8", 4, "outside the mask"},
	{"net 10.0.0.0/33", 13, "over 32"},
	{"host 1.2.3.400", 5, "0 to 255"},
	{"host 10.0.0.1 and", 17, "end of the expression"},
	{"ip[0:3] = 1", 5, "data size"},
	{"vlan 5000", 5, "4095"},
	{"foo", 0, "qualifier"},
	{"1.2.3.4", 0, "qualifier"},
	{"port 80 )", 8, "expected 'and', 'or'"},
	{"(tcp", 4, `expected ")"`},
	{"tcp)", 3, "expected 'and', 'or'"},
	{"ip proto \\foo", 9, "unknown ip protocol"},
	{"ether host 1.2.3.4", 11, "Ethernet address"},
	{"tcp host 10.0.0.1", 9, "'tcp' applied to host"},
	{"ip6 host 10.0.0.1", 9, "'ip6' applied"},
	{"ip host 2001:db8::1", 8, "'ip' applied"},
	{"len >", 5, "expected a number"},
	{"ip[0] / 0 = 1", 6, "division by zero"},
	{"ip[0] % 0 = 1", 6, "modulus by zero"},
	{"ether[0] << 32 = 1", 9, "shift"},
	{"host 2001:db8::1/64", 5, "outside the prefix"},
	{"host 2001:db8::/64", 5, "for 'net' only"},
	{"gateway 10.0.0.1", 0, "not supported"},
	{"tcp or 80", 7, "qualifier"},
	{"ip port 80", 8, "cannot qualify a port"},
	{"udp port http", 9, "port http is tcp"},
	{"port 09", 5, "non-octal"},
	{"host $", 5, "illegal character"},
	{"len-100 > 5", 0, "qualifier"},
	{"tcp[0] = ", 9, "expected a number"},
	{"ether", 0, "alone is not a test"},
	{"less", 4, "expected a number"},
	{"host 10.0.0.1 or and", 17, "expected a primitive"},
	{"src", 3, "expected a host, network, port"},
	{"ip6 net 2001:db8::/129", 19, "over 128"},
	{"net 10.0.0.0 mask 255.0.0.0.1", 18, ""},
	{"ether proto \\tcp", 12, "unknown ether protocol"},
	{"vlan[0] = 1", 4, "expected 'and', 'or'"},
	{"ip[0 = 1", 5, `expected "]"`},
	{"\\", 0, "name must follow"},
}

func TestSyntaxErrors(t *testing.T) {
	for _, c := range badExprs {
		for _, mode := range []Mode{Offline, Live} {
			_, err := Compile(c.expr, mode, 0)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Errorf("Compile(%q, %v) = %v, want a *SyntaxError", c.expr, mode, err)
				continue
			}
			if se.Pos != c.pos || !strings.Contains(se.Msg, c.msg) || se.Expr != c.expr {
				t.Errorf("Compile(%q): %v (pos %d), want pos %d and %q in the message", c.expr, err, se.Pos, c.pos, c.msg)
			}
		}
		if _, err := NewMatcher(c.expr); err == nil {
			t.Errorf("NewMatcher(%q) succeeded", c.expr)
		}
	}
}

// TestSyntaxErrorsAgreeWithLibpcap checks that libpcap rejects the same
// expressions (where it does not, the difference is documented).
func TestSyntaxErrorsAgreeWithLibpcap(t *testing.T) {
	pcap := emptyPcap(t)
	for _, c := range badExprs {
		if c.expr == "\\" || c.expr == "host 1.2.3.400" {
			continue // libpcap's scanner reads these differently but rejects them too; checked below
		}
		if _, err := libpcapProgram(t, []string{"-r", pcap}, c.expr); err == nil {
			t.Errorf("libpcap accepts %q, which we reject", c.expr)
		}
	}
}

func TestEmptyExpressionAcceptsAll(t *testing.T) {
	m, err := NewMatcher("")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range buildCorpus(4)[:50] {
		if !m.Match(f.data) {
			t.Fatalf("empty expression rejects %s", f.name)
		}
	}
	p, err := Compile("", Offline, 96)
	if err != nil || len(p) != 1 || p[0] != (bpf.RetConstant{Val: 96}) {
		t.Fatalf("Compile(\"\") = %v, %v; want [ret #96]", p, err)
	}
}

func TestCompileSnapAndLimits(t *testing.T) {
	p, err := Compile("tcp", Offline, 0)
	if err != nil {
		t.Fatal(err)
	}
	var accept uint32
	for _, in := range p {
		if r, ok := in.(bpf.RetConstant); ok && r.Val != 0 {
			accept = r.Val
		}
	}
	if accept != MaxSnap {
		t.Errorf("snaplen 0 returns %d on accept, want %d", accept, MaxSnap)
	}
	// A long list of alternatives needs far jumps; it must stay valid.
	var parts []string
	for i := 0; i < 60; i++ {
		parts = append(parts, "host 10.0.0."+itoa(i))
	}
	long := strings.Join(parts, " or ")
	raw, err := compileRaw([]Rule{{Expr: long, Snap: 1}}, Offline, 0)
	if err != nil {
		t.Fatal(err)
	}
	if msg := checkProgram(raw); msg != "" {
		t.Fatal(msg)
	}
	m, err := NewMatcher(long)
	if err != nil {
		t.Fatal(err)
	}
	f := eth(macA, macB, nil, ethIP, ipv4([4]byte{192, 168, 9, 9}, [4]byte{10, 0, 0, 59}, ipprotoUDP, nil, 0, udpHdr(1, 2)))
	if !m.Match(f) {
		t.Errorf("%d-instruction program misses the last alternative", len(raw))
	}
	// Too long for the kernel: an error, not a program.
	for i := 0; i < 300; i++ {
		parts = append(parts, "port "+itoa(i+1))
	}
	if _, err := Compile(strings.Join(parts, " or "), Offline, 0); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("huge expression: %v, want an error about the kernel's limit", err)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// TestCompileRules checks the rule program against libpcap: the verdict
// of each rule comes from libpcap's own program for it, and the rule
// program must return the snap length of the first rule that matches.
func TestCompileRules(t *testing.T) {
	pcap := emptyPcap(t)
	rules := []Rule{
		{Expr: "udp portrange 10000-20000", Snap: 96},
		{Expr: "port 22", Snap: 0},
		{Expr: "vlan 100", Snap: 128},
		{Expr: "icmp or icmp6", Snap: 1000},
	}
	const def = 65535
	var refs []func([]byte) (int, error)
	for _, r := range rules {
		ref, err := libpcapProgram(t, []string{"-r", pcap}, r.Expr)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, vmVerdict(t, ref))
	}
	prog, err := CompileRules(rules, Offline, def)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	hits := make([]int, len(rules)+1)
	for _, f := range buildCorpus(5) {
		want := uint32(def)
		hit := len(rules)
		for i, ref := range refs {
			v, err := ref(f.data)
			if err != nil {
				t.Fatal(err)
			}
			if v != 0 {
				want, hit = rules[i].Snap, i
				break
			}
		}
		got, err := vm.Run(f.data)
		if err != nil {
			t.Fatal(err)
		}
		if uint32(got) != want {
			t.Errorf("frame %s: rule program returns %d, want %d", f.name, got, want)
		}
		hits[hit]++
	}
	for i, n := range hits {
		if n == 0 {
			t.Errorf("no frame reaches rule %d: the test shows nothing", i)
		}
	}
	_, err = CompileRules([]Rule{{Expr: "tcp"}, {Expr: "host"}}, Live, 0)
	var se *SyntaxError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "rule 2") {
		t.Errorf("bad second rule: %v, want a *SyntaxError naming rule 2", err)
	}
	// Live rule programs with VLAN rules zero their offsets per rule.
	lp, err := CompileRules([]Rule{{Expr: "vlan and tcp", Snap: 1}, {Expr: "vlan 5 and udp", Snap: 2}}, Live, 3)
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := bpf.Assemble(lp); err != nil || checkProgram(raw) != "" {
		t.Fatalf("live rules program invalid: %v %s", err, checkProgram(raw))
	}
}

func TestMatcherAgainstVM(t *testing.T) {
	for _, expr := range diffExprs[:80] {
		m, err := NewMatcher(expr)
		if err != nil {
			t.Fatal(err)
		}
		if m.String() != expr {
			t.Errorf("String() = %q", m.String())
		}
		p, _ := Compile(expr, Offline, 1)
		vm, err := bpf.NewVM(p)
		if err != nil {
			t.Fatalf("%q: %v", expr, err)
		}
		for _, f := range buildCorpus(6) {
			v, err := vm.Run(f.data)
			if err != nil {
				t.Fatal(err)
			}
			if (v != 0) != m.Match(f.data) {
				t.Errorf("%q on %s: VM %d, Matcher %v", expr, f.name, v, m.Match(f.data))
			}
		}
	}
}

func TestMatchLenUsesWireLength(t *testing.T) {
	m, err := NewMatcher("greater 1000 and udp")
	if err != nil {
		t.Fatal(err)
	}
	f := eth(macA, macB, nil, ethIP, ipv4([4]byte{1, 2, 3, 4}, [4]byte{5, 6, 7, 8}, ipprotoUDP, nil, 0, udpHdr(1, 2)))
	if m.Match(f) {
		t.Errorf("short frame matches 'greater 1000'")
	}
	if !m.MatchLen(f, 1400) {
		t.Errorf("frame cut from 1400 bytes does not match 'greater 1000'")
	}
	m2, _ := NewMatcher("udp port 2")
	if m2.MatchLen(f[:36], 1400) {
		t.Errorf("frame cut before the UDP header matches a port test")
	}
}

func TestVerifyRefusesWhatTheKernelRefuses(t *testing.T) {
	ret := bpf.RawInstruction{Op: clsRET | retK, K: 1}
	for name, prog := range map[string][]bpf.RawInstruction{
		"read before write": {{Op: clsLD | szW | mMEM, K: 3}, ret},
		"read on one path":  {{Op: clsLD | szB | mABS, K: 0}, {Op: clsJMP | jmpJEQ, Jt: 0, Jf: 1, K: 1}, {Op: clsST, K: 2}, {Op: clsLDX | szW | mMEM, K: 2}, ret},
		"jump out":          {{Op: clsJMP | jmpJA, K: 5}, ret},
		"no ret":            {{Op: clsLD | mIMM, K: 1}},
		"bad opcode":        {{Op: 0xff}, ret},
		"bad slot":          {{Op: clsST, K: 16}, ret},
	} {
		if err := verify(prog); err == nil {
			t.Errorf("%s: verify accepts it", name)
		}
	}
	ok := []bpf.RawInstruction{{Op: clsLD | mIMM}, {Op: clsST, K: 2}, {Op: clsLDX | szW | mMEM, K: 2}, ret}
	if err := verify(ok); err != nil {
		t.Errorf("verify refuses a good program: %v", err)
	}
}

// TestLiveMatcher checks NewLiveMatcher against the Live program run on
// the frame as the socket saw it (the Live program itself is checked
// against libpcap's and tcpdump -i elsewhere).
func TestLiveMatcher(t *testing.T) {
	corpus := buildCorpus(14)
	differ := 0
	for _, expr := range diffExprs {
		lm, err := NewLiveMatcher(expr)
		if err != nil {
			t.Fatal(err)
		}
		om, _ := NewMatcher(expr)
		raw, _ := compileRaw([]Rule{{Expr: expr, Snap: 1}}, Live, 0)
		vm, _ := newVM(raw)
		for _, f := range corpus {
			seen, vl := asSeenLive(f.data)
			want := run(vm, seen, len(seen), vl) != 0
			if got := lm.Match(f.data); got != want {
				t.Errorf("%q on %s: live matcher %v, live program on the socket's view %v", expr, f.name, got, want)
			}
			if want != om.Match(f.data) {
				differ++
			}
		}
	}
	if differ == 0 {
		t.Errorf("live and offline matchers never differ: the test shows nothing")
	}
	m, _ := NewLiveMatcher("ip and greater 60")
	f := eth(macA, macB, []vlanTag{{eth8021Q, 5}}, ethIP, ipv4([4]byte{1, 2, 3, 4}, [4]byte{5, 6, 7, 8}, ipprotoUDP, nil, 0, udpHdr(1, 2)))
	if !m.MatchLen(f, 64) || m.MatchLen(f, 63) {
		t.Errorf("live matcher: a tagged frame of 64 bytes on the wire was 60 on the socket")
	}
}

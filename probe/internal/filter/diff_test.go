package filter

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/presscap/presscap/internal/testing/testtool"
)

// constantVerdict lists the expressions of diffExprs that accept every
// frame or none of the corpus, on purpose (they test arithmetic on
// constants). Every other expression must split the corpus, so that the
// comparison shows something.
var constantVerdict = map[string]bool{
	"2 + 3 * 4 = 14":  true,
	"-1 = 0xffffffff": true,
	// An 802.3 frame's DSAP is a byte: it is never 1500.
	"ether proto 1500": true,
}

type diffResult struct {
	expr     string
	accepted int
	problems []string
	// optimizerOnly counts truncated frames on which libpcap's optimized
	// and unoptimized programs disagree with each other, ours siding
	// with one of them.
	optimizerOnly int
	libpcapBugs   []string // complete frames among those
}

// TestDifferentialOffline compiles every expression with libpcap (through
// tcpdump) and with this package, runs both programs on every frame of the
// corpus and requires the same verdict.
func TestDifferentialOffline(t *testing.T) {
	pcap := emptyPcap(t)
	corpus := buildCorpus(1)
	if len(corpus) < 400 {
		t.Fatalf("corpus has %d frames, want at least 400", len(corpus))
	}
	if len(diffExprs) < 150 {
		t.Fatalf("%d expressions, want at least 150", len(diffExprs))
	}
	seen := map[string]bool{}
	for _, e := range diffExprs {
		if seen[e] {
			t.Errorf("expression %q listed twice", e)
		}
		seen[e] = true
	}
	results := make([]diffResult, len(diffExprs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, expr := range diffExprs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = diffOne(t, pcap, expr, corpus)
		}()
	}
	wg.Wait()
	failed, optOnly := 0, 0
	for _, r := range results {
		optOnly += r.optimizerOnly
		if len(r.libpcapBugs) > 0 {
			t.Logf("%q: libpcap's optimized program is wrong on complete frames %v", r.expr, r.libpcapBugs)
		}
		if len(r.problems) > 0 {
			failed++
			t.Errorf("%q:\n  %s", r.expr, strings.Join(r.problems, "\n  "))
			continue
		}
		if (r.accepted == 0 || r.accepted == len(corpus)) && !constantVerdict[r.expr] {
			t.Errorf("%q: libpcap accepts %d of %d frames: the corpus does not exercise it", r.expr, r.accepted, len(corpus))
		}
	}
	t.Logf("%d expressions x %d frames compared, %d expressions differ; %d verdicts on truncated frames where libpcap's optimized and unoptimized programs disagree", len(diffExprs), len(corpus), failed, optOnly)
}

func diffOne(t *testing.T, pcap, expr string, corpus []frame) diffResult {
	res := diffResult{expr: expr}
	ref, err := libpcapProgram(t, []string{"-r", pcap}, expr)
	if err != nil {
		res.problems = append(res.problems, err.Error())
		return res
	}
	refRun := vmVerdict(t, ref)
	unopt, err := libpcapProgram(t, []string{"-O", "-r", pcap}, expr)
	if err != nil {
		res.problems = append(res.problems, err.Error())
		return res
	}
	unoptRun := vmVerdict(t, unopt)
	ours, err := compileRaw([]Rule{{Expr: expr, Snap: MaxSnap}}, Offline, 0)
	if err != nil {
		res.problems = append(res.problems, "ours: "+err.Error())
		return res
	}
	if msg := checkProgram(ours); msg != "" {
		res.problems = append(res.problems, msg)
		return res
	}
	vmProg, err := newVM(ours)
	if err != nil {
		res.problems = append(res.problems, err.Error())
		return res
	}
	ourIns := make([]bpf.Instruction, len(ours))
	for i, r := range ours {
		ourIns[i] = r.Disassemble()
	}
	ourVM, vmErr := bpf.NewVM(ourIns)
	for _, f := range corpus {
		want, err := refRun(f.data)
		if err != nil {
			res.problems = append(res.problems, fmt.Sprintf("libpcap's program fails on %s: %v", f.name, err))
			continue
		}
		want0, err := unoptRun(f.data)
		if err != nil {
			res.problems = append(res.problems, fmt.Sprintf("libpcap's unoptimized program fails on %s: %v", f.name, err))
			continue
		}
		got := run(vmProg, f.data, len(f.data), vlanInfo{})
		if want != 0 {
			res.accepted++
		}
		opt, unopt, ours := want != 0, want0 != 0, got != 0
		switch {
		case ours == opt && ours == unopt:
		case opt != unopt && f.truncated:
			// libpcap disagrees with itself on a frame cut inside its
			// headers: its optimizer moves loads (or_pullup,
			// and_pullup) or drops them (a zero mask), and a load past
			// the end decides the verdict. Either answer is libpcap's.
			res.optimizerOnly++
		case opt != unopt && ours == unopt:
			// On a complete frame libpcap's optimizer is plainly wrong;
			// ours must then agree with libpcap's code generator.
			res.optimizerOnly++
			res.libpcapBugs = append(res.libpcapBugs, f.name)
		default:
			if len(res.problems) < 6 {
				res.problems = append(res.problems, fmt.Sprintf("frame %s (% x): libpcap %d (unoptimized %d), ours %d", f.name, f.data, want, want0, got))
			}
		}
		if vmErr == nil {
			if v, err := ourVM.Run(f.data); err == nil && uint32(v) != got {
				res.problems = append(res.problems, fmt.Sprintf("frame %s: x/net/bpf VM says %d, our interpreter %d", f.name, v, got))
			}
		}
	}
	if len(res.problems) > 0 {
		var b bytes.Buffer
		Dump(&b, disassemble(ours), DumpAsm)
		res.problems = append(res.problems, "our program:\n"+b.String())
	}
	return res
}

func disassemble(raw []bpf.RawInstruction) []bpf.Instruction {
	out := make([]bpf.Instruction, len(raw))
	for i, r := range raw {
		out[i] = r.Disassemble()
	}
	return out
}

// checkProgram enforces what the kernel's verifier requires of a classic
// BPF program: length, forward jumps inside the program, a final return,
// known scratch slots.
func checkProgram(prog []bpf.RawInstruction) string {
	if len(prog) == 0 || len(prog) > MaxInstructions {
		return fmt.Sprintf("program length %d", len(prog))
	}
	if _, err := bpf.Assemble(disassemble(prog)); err != nil {
		return fmt.Sprintf("bpf.Assemble: %v", err)
	}
	if _, err := newVM(prog); err != nil {
		return err.Error()
	}
	return ""
}

// asSeenLive turns a stored frame into what an AF_PACKET socket's filter
// sees: the kernel takes an outer 802.1Q or 802.1ad tag out of the frame
// and reports it as ancillary data.
func asSeenLive(b []byte) ([]byte, vlanInfo) {
	if len(b) >= 18 {
		tpid := uint16(b[12])<<8 | uint16(b[13])
		if tpid == eth8021Q || tpid == eth8021AD {
			out := append(append([]byte(nil), b[:12]...), b[16:]...)
			return out, vlanInfo{present: true, tci: uint16(b[14])<<8 | uint16(b[15])}
		}
	}
	return b, vlanInfo{}
}

var randomLiveExprs = flag.Int("filter.randomlive", 60, "random expressions added to TestDifferentialLiveProgram")

// TestDifferentialLiveProgram compares live programs in userspace:
// libpcap's, compiled by tcpdump for a live Ethernet device (lo) and so
// using the kernel's VLAN extensions, against ours, on every complete
// frame of the corpus as the kernel would present it.
func TestDifferentialLiveProgram(t *testing.T) {
	testtool.Root(t, "tcpdump -ddd -i lo (it opens the device)")
	testtool.Path(t, "tcpdump", "tcpdump")
	corpus := buildCorpus(2)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	var mu sync.Mutex
	checked, clashes := 0, 0
	exprs := append([]string(nil), diffExprs...)
	r := rand.New(rand.NewSource(12))
	for i := 0; i < *randomLiveExprs; i++ {
		exprs = append(exprs, randomExpr(r, 3))
	}
	for _, expr := range exprs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ref, err := libpcapProgram(t, []string{"-i", "lo"}, expr)
			if err != nil && strings.Contains(err.Error(), "block-local relative jump") {
				// libpcap's optimizer fails on the jumps inside its own
				// VLAN ID test; its unoptimized program is the reference.
				t.Logf("%q: %v; comparing with the unoptimized program only", expr, err)
				ref, err = libpcapProgram(t, []string{"-O", "-i", "lo"}, expr)
			}
			if err != nil {
				t.Errorf("%v", err)
				return
			}
			refVM, err := newVM(ref)
			if err != nil {
				t.Errorf("%q: libpcap's live program: %v", expr, err)
				return
			}
			unopt, err := libpcapProgram(t, []string{"-O", "-i", "lo"}, expr)
			if err != nil {
				t.Errorf("%v", err)
				return
			}
			unoptVM, err := newVM(unopt)
			if err != nil {
				t.Errorf("%q: libpcap's unoptimized live program: %v", expr, err)
				return
			}
			if r, clash := scratchClash(unopt); clash {
				// libpcap 1.10 allocates its VLAN offset registers after
				// a relation freed its scratch slots, and the relation
				// then overwrites the offset: its live program is wrong.
				t.Logf("%q: libpcap's live program uses M[%d] both as VLAN offset and as relation scratch; not comparable", expr, r)
				mu.Lock()
				clashes++
				mu.Unlock()
				return
			}
			ours, err := compileRaw([]Rule{{Expr: expr, Snap: MaxSnap}}, Live, 0)
			if err != nil {
				t.Errorf("%q: %v", expr, err)
				return
			}
			if msg := checkProgram(ours); msg != "" {
				t.Errorf("%q: %s", expr, msg)
				return
			}
			ourVM, _ := newVM(ours)
			bad := 0
			var bugs []string
			defer func() {
				if len(bugs) > 0 {
					t.Logf("%q: libpcap's optimized live program is wrong on %d frames, e.g. %s", expr, len(bugs), bugs[0])
				}
			}()
			for _, f := range corpus {
				if f.truncated {
					continue
				}
				data, vl := asSeenLive(f.data)
				opt := run(refVM, data, len(data), vl) != 0
				unopt := run(unoptVM, data, len(data), vl) != 0
				ours := run(ourVM, data, len(data), vl) != 0
				if opt != unopt && ours == unopt {
					// libpcap's optimizer mangles the jumps it puts inside
					// its VLAN ID test (libpcap 1.10): its optimized live
					// program is wrong, its code generator is not.
					bugs = append(bugs, f.name)
					continue
				}
				if ours != opt || ours != unopt {
					if bad++; bad <= 4 {
						t.Errorf("%q: frame %s (vlan %v): libpcap live %v (unoptimized %v), ours %v", expr, f.name, vl, opt, unopt, ours)
					}
				}
			}
			mu.Lock()
			checked++
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("%d live programs compared, %d set aside for libpcap's scratch memory clash", checked, clashes)
	if clashes*10 > len(exprs) {
		t.Errorf("%d of %d expressions set aside: too many for the comparison to mean much", clashes, len(exprs))
	}
}

// scratchClash finds a scratch slot that an unoptimized libpcap live
// program uses both for a VLAN offset (ld M[r]; add #4; st M[r] on the
// no-tag-in-metadata path) and for something else.
func scratchClash(prog []bpf.RawInstruction) (int, bool) {
	offsetRegs := map[uint32]bool{}
	for i := 0; i+2 < len(prog); i++ {
		if prog[i].Op == clsLD|mMEM && prog[i+1].Op == clsALU|aluADD|srcK && prog[i+1].K == 4 &&
			prog[i+2].Op == clsST && prog[i+2].K == prog[i].K {
			offsetRegs[prog[i].K] = true
		}
	}
	for i, r := range prog {
		if r.Op != clsST || !offsetRegs[r.K] {
			continue
		}
		prev := prog[max(i-1, 0)]
		isInit := prev.Op == clsLD|mIMM && prev.K == 0 || prev.Op == clsST // ld #0; st M[a]; st M[b]
		isAdd := prev.Op == clsALU|aluADD|srcK && prev.K == 4
		if !isInit && !isAdd {
			return int(r.K), true
		}
	}
	return 0, false
}

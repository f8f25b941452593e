package filter

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/bpf"
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
		switch {
		case (want != 0) == (got != 0):
		case f.truncated && (want0 != 0) == (got != 0):
			// libpcap's optimizer moves loads (or_pullup, and_pullup):
			// on a frame cut inside the headers its two programs
			// disagree, and ours agrees with the unoptimized one.
			res.optimizerOnly++
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

// TestDifferentialLiveProgram compares live programs in userspace:
// libpcap's, compiled by tcpdump for a live Ethernet device (lo) and so
// using the kernel's VLAN extensions, against ours, on every complete
// frame of the corpus as the kernel would present it.
func TestDifferentialLiveProgram(t *testing.T) {
	requireTcpdump(t)
	corpus := buildCorpus(2)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	var mu sync.Mutex
	checked := 0
	for _, expr := range diffExprs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ref, err := libpcapProgram(t, []string{"-i", "lo"}, expr)
			if err != nil {
				t.Errorf("%v", err)
				return
			}
			refVM, err := newVM(ref)
			if err != nil {
				t.Errorf("%q: libpcap's live program: %v", expr, err)
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
			for _, f := range corpus {
				if f.truncated {
					continue
				}
				data, vl := asSeenLive(f.data)
				want := run(refVM, data, len(data), vl)
				got := run(ourVM, data, len(data), vl)
				if (want != 0) != (got != 0) {
					if bad++; bad <= 4 {
						t.Errorf("%q: frame %s (vlan %v): libpcap live %d, ours %d", expr, f.name, vl, want, got)
					}
				}
			}
			mu.Lock()
			checked++
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("%d live programs compared", checked)
}

package filter

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/bpf"
)

// benchExpr is the benchmark's five-primitive export filter: one phone's
// RTP, not its SIP, no broadcast.
const benchExpr = "host 10.0.0.1 and udp and portrange 10000-20000 and not port 15000 and not ether broadcast"

func benchFrames() [][]byte {
	var out [][]byte
	for _, f := range buildCorpus(9) {
		if !f.truncated {
			out = append(out, f.data)
		}
	}
	return out
}

// BenchmarkFilter5 measures the cost of one packet through the Matcher,
// through x/net/bpf's VM with our program, and through x/net/bpf's VM
// with libpcap's program for the same expression (from tcpdump -ddd):
// `make bench-filter` prints the ratios.
func BenchmarkFilter5(b *testing.B) {
	frames := benchFrames()
	m, err := NewMatcher(benchExpr)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("matcher", func(b *testing.B) {
		n := 0
		for i := 0; i < b.N; i++ {
			if m.Match(frames[i%len(frames)]) {
				n++
			}
		}
		_ = n
	})
	ours, err := Compile(benchExpr, Offline, MaxSnap)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("xnet-vm-ours", func(b *testing.B) { benchVM(b, ours, frames) })
	ref, err := libpcapProgram(b, []string{"-r", emptyPcap(b)}, benchExpr)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("xnet-vm-libpcap", func(b *testing.B) { benchVM(b, disassemble(ref), frames) })
	b.Logf("instructions: ours %d, libpcap's %d", len(ours), len(ref))
	// The machine is shared: time the two in alternation, 1000 packets
	// each a turn, so that both see the same load, and report the ratio.
	b.Run("interleaved", func(b *testing.B) {
		vm, err := bpf.NewVM(disassemble(ref))
		if err != nil {
			b.Fatal(err)
		}
		var tm, tv time.Duration
		k := 0
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			for j := 0; j < 1000; j++ {
				m.Match(frames[(k+j)%len(frames)])
			}
			t1 := time.Now()
			for j := 0; j < 1000; j++ {
				vm.Run(frames[(k+j)%len(frames)])
			}
			tv += time.Since(t1)
			tm += t1.Sub(t0)
			k += 1000
		}
		n := float64(b.N) * 1000
		b.ReportMetric(float64(tm.Nanoseconds())/n, "matcher-ns/pkt")
		b.ReportMetric(float64(tv.Nanoseconds())/n, "libpcap-vm-ns/pkt")
		b.ReportMetric(float64(tm)/float64(tv), "ratio")
	})
}

func benchVM(b *testing.B, prog []bpf.Instruction, frames [][]byte) {
	vm, err := bpf.NewVM(prog)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if _, err := vm.Run(frames[i%len(frames)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompileBounds compiles expressions at the parser's bounds, and
// libpcap (tcpdump -d, a process each time) the same ones where it finishes
// in reasonable time: the nesting limit's worst case for the parser, and
// the largest code the optimiser is given. The 1600-port list is refused
// before optimising; tcpdump had not finished it after 9 minutes.
func BenchmarkCompileBounds(b *testing.B) {
	var hosts, ports []string
	for i := 0; i < 680; i++ {
		hosts = append(hosts, fmt.Sprintf("10.0.%d.%d", i/250, i%250+1))
	}
	for i := 1; i <= 1600; i++ {
		ports = append(ports, fmt.Sprint(i))
	}
	group := nested("(", "port 80", ")", MaxNesting-1)
	cases := []struct {
		name, expr string
		libpcap    bool
	}{
		{"nested-255x60", strings.TrimSuffix(strings.Repeat(group+" or ", 60), " or "), true},
		{"tcp-or-1360", strings.TrimSuffix(strings.Repeat("tcp or ", 1360), " or "), true},
		{"ports-1600-refused", "port " + strings.Join(ports, " or "), false},
	}
	for _, c := range cases {
		b.Run(c.name+"/ours", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				Compile(c.expr, Offline, 0)
			}
		})
		if c.libpcap {
			b.Run(c.name+"/tcpdump", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if _, err := libpcapProgram(b, []string{"-r", emptyPcap(b)}, c.expr); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
	b.Run("hosts-680/ours", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			Compile("host "+strings.Join(hosts, " or "), Offline, 0)
		}
	})
}

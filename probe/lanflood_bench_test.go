package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/probe/config"
)

// BenchmarkLANFlood measures what a flood of the status listener costs
// the running service (`probe run` in this process, capturing a veth link
// with frames flowing): 300 clients from 40 addresses on the link holding
// keep-alive connections (idle) or sending 1 MB headers (headers), 5 s
// each, and the same 5 s without a flood (quiet) for comparison. It
// reports, against the moment before: the peak growth of the process's
// resident memory and of the Go heap and stacks (garbage awaiting the
// collector included), the growth of the live heap and stacks (collected
// at the end of the flood, with the flood still holding its connections),
// the most descriptors held, and the live heap and stacks before. Run with -benchtime 1x.
func BenchmarkLANFlood(b *testing.B) {
	netnstest.Require(b, "ip")
	pair, sources, loop, lan := lanLink(b)
	c := runConfig(b, pair.Host, loop, lan)
	c.Ring.Rules = []config.RingRule{{Filter: "tcp", Snaplen: 96}}
	startRun(b, c)
	defer sendFrames(b, pair.NewSender(b))()
	for _, mode := range []string{"quiet", "idle", "headers"} {
		b.Run(mode, func(b *testing.B) {
			var rss, heap, live, fds, before []float64
			for range b.N {
				runtime.GC()
				time.Sleep(500 * time.Millisecond) // let the service settle after the GC
				runtime.GC()
				rss0, heap0, fds0 := procRSS(b), goMem(), openFDs(b)
				before = append(before, float64(heap0)/(1<<20))
				var f *flood
				if mode != "quiet" {
					f = startFlood(b, pair.NS, floodSpec{Mode: mode, Target: lan, Sources: sources, Clients: 300, Backoff: 200 * time.Millisecond})
				}
				peakRSS, peakHeap, peakFDs := rss0, heap0, fds0
				for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
					peakRSS, peakHeap, peakFDs = max(peakRSS, procRSS(b)), max(peakHeap, goMem()), max(peakFDs, openFDs(b))
					time.Sleep(20 * time.Millisecond)
				}
				runtime.GC()
				live = append(live, float64(goMem()-heap0)/(1<<20))
				if f != nil {
					res := f.stop(b)
					b.Logf("%s: %d connections tried, answers %v", mode, res.Attempts, res.Responses)
				}
				rss = append(rss, float64(peakRSS-rss0)/(1<<20))
				heap = append(heap, float64(peakHeap-heap0)/(1<<20))
				fds = append(fds, float64(peakFDs-fds0))
			}
			b.ReportMetric(maxOf(rss), "rss-growth-MiB")
			b.ReportMetric(maxOf(heap), "heap-growth-MiB")
			b.ReportMetric(maxOf(live), "live-growth-MiB")
			b.ReportMetric(maxOf(fds), "extra-fds")
			b.ReportMetric(maxOf(before), "live-before-MiB")
		})
	}
}

func maxOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs[1:] {
		m = max(m, x)
	}
	return m
}

// procRSS is the process's resident memory in bytes (VmRSS).
func procRSS(b testing.TB) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb << 10
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// goMem is the Go heap and stacks in use, in bytes.
func goMem() int64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}

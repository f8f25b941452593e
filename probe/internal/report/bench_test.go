package report_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/presscap/presscap/probe/internal/report"
	"github.com/presscap/presscap/probe/internal/report/reporttest"
)

// BenchmarkAnalysis is the analysis alone of a 2-minute window of the busy
// line (reporttest.Busy), per packet, and the memory the analyser holds at
// its end.
func BenchmarkAnalysis(b *testing.B) {
	g := reporttest.Busy(1, 2*time.Minute, 10)
	links := []report.Link{{Name: "eth0", LinkType: 1}}
	var held uint64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		a := report.New(links, report.Options{HeuristicRTP: true})
		for _, p := range g.Pkts {
			a.Add(0, p.TS, uint32(len(p.Data)), p.Data)
		}
		a.Summary()
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		held = max(held, after.HeapAlloc-min(before.HeapAlloc, after.HeapAlloc))
		runtime.KeepAlive(a)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(g.Pkts)), "ns/pkt")
	b.ReportMetric(float64(held)/(1<<20), "held-MiB")
}

// BenchmarkHeldAtCaps is the memory the analyser holds when every table
// is full (the default caps, a flood of 20 000 hosts each opening an RTP
// stream, a TCP connection, a DNS query and a SIP dialog): the bound of
// its memory whatever the window holds.
func BenchmarkHeldAtCaps(b *testing.B) {
	g := reporttest.Flood(9, 20000)
	links := []report.Link{{Name: "eth0", LinkType: 1}}
	var held uint64
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		a := report.New(links, report.Options{HeuristicRTP: true})
		for _, p := range g.Pkts {
			a.Add(0, p.TS, uint32(len(p.Data)), p.Data)
		}
		s := a.Summary()
		runtime.GC()
		runtime.ReadMemStats(&after)
		held = max(held, after.HeapAlloc-min(before.HeapAlloc, after.HeapAlloc))
		runtime.KeepAlive(a)
		if s.Limits.RTPStreamsDropped == 0 || s.Limits.TCPConnectionsDropped == 0 {
			b.Fatalf("tables not full: %+v", s.Limits)
		}
	}
	b.ReportMetric(float64(held)/(1<<20), "held-MiB")
}

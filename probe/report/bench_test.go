package report_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/presscap/presscap/probe/report"
	"github.com/presscap/presscap/probe/report/reporttest"
	"github.com/presscap/presscap/probe/service"
	"github.com/presscap/presscap/ringfs"
)

// BenchmarkReportVsExport analyses a 2-minute window of a busy line (two
// calls, DNS, ten TCP transfers: about 150 000 packets) and compares with
// the export of the same window from a ring into one PCAP (what a press
// costs today): ratio analysis / export, the goal being 0.3 or less. It
// also reports the analysis per packet and the memory the analyser holds
// at the end of the window (its tables; the live heap's growth).
func BenchmarkReportVsExport(b *testing.B) {
	g := reporttest.Busy(1, 2*time.Minute, 10)
	dir := b.TempDir()
	ring, err := ringfs.Create(filepath.Join(dir, "ring"), ringfs.Options{Size: 512 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer ring.Close()
	id, err := ring.AddLink(ringfs.Link{Name: "eth0", LinkType: 1})
	if err != nil {
		b.Fatal(err)
	}
	var bytes int
	for _, p := range g.Pkts {
		if err := ring.Append(ringfs.Record{Time: p.TS, Link: id, OrigLen: uint32(len(p.Data)), Data: p.Data}); err != nil {
			b.Fatal(err)
		}
		bytes += len(p.Data)
	}
	if err := ring.Flush(); err != nil {
		b.Fatal(err)
	}
	first, last := g.Pkts[0].TS, g.Pkts[len(g.Pkts)-1].TS
	win := &service.Window{ID: 1, Presses: []service.PressInfo{{Time: time.Unix(0, first+int64(time.Minute)), Synced: true}},
		From: time.Unix(0, first), To: time.Unix(0, last+1)}
	specs := []service.ExportSpec{{Name: "all"}}
	links := []report.Link{{Name: "eth0", LinkType: 1}}

	var export, analysis time.Duration
	var retained uint64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := filepath.Join(dir, "out")
		os.RemoveAll(out)
		start := time.Now()
		man, err := service.Export(context.Background(), ring, win, specs, "bench", out, nil)
		if err != nil {
			b.Fatal(err)
		}
		export += time.Since(start)
		if man.Files[0].Packets != uint64(len(g.Pkts)) {
			b.Fatalf("export holds %d packets, want %d", man.Files[0].Packets, len(g.Pkts))
		}

		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start = time.Now()
		a := report.New(links, report.Options{Start: first, Press: first + int64(time.Minute), HeuristicRTP: true})
		for _, p := range g.Pkts {
			a.Add(0, p.TS, uint32(len(p.Data)), p.Data)
		}
		s := a.Summary()
		analysis += time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)
		retained = max(retained, after.HeapAlloc-min(before.HeapAlloc, after.HeapAlloc))
		runtime.KeepAlive(a)
		if len(s.RTPStreams) != 4 || s.TCP.Connections != 10 {
			b.Fatalf("analysis: %d RTP streams, %d TCP connections", len(s.RTPStreams), s.TCP.Connections)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(len(g.Pkts)), "packets")
	b.ReportMetric(float64(bytes)/(1<<20), "window-MiB")
	b.ReportMetric(float64(analysis.Nanoseconds())/n/float64(len(g.Pkts)), "analysis-ns/pkt")
	b.ReportMetric(float64(analysis.Milliseconds())/n, "analysis-ms")
	b.ReportMetric(float64(export.Milliseconds())/n, "export-ms")
	b.ReportMetric(float64(analysis)/float64(export), "ratio-vs-export")
	b.ReportMetric(float64(retained)/(1<<20), "held-MiB")
}

// BenchmarkAnalysis is the analysis alone, per packet of the busy line.
func BenchmarkAnalysis(b *testing.B) {
	g := reporttest.Busy(1, 30*time.Second, 10)
	links := []report.Link{{Name: "eth0", LinkType: 1}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a := report.New(links, report.Options{HeuristicRTP: true})
		for _, p := range g.Pkts {
			a.Add(0, p.TS, uint32(len(p.Data)), p.Data)
		}
		a.Summary()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(g.Pkts)), "ns/pkt")
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

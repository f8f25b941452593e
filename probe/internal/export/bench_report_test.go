package export

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/presscap/presscap/probe/internal/report/reporttest"
	"github.com/presscap/presscap/probe/internal/window"
	"github.com/presscap/presscap/ringfs"
)

// BenchmarkReportInExport is what the capture report costs a press: the
// export of a 2-minute window of a busy line (two calls, DNS, ten TCP
// transfers: about 145 000 packets) into one PCAP with the report computed
// in its pass (summary, HTML page), against the same export without it,
// alternating in the same run. The goal is an added cost of at most 0.3×
// the export.
func BenchmarkReportInExport(b *testing.B) {
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
	for _, p := range g.Pkts {
		if err := ring.Append(ringfs.Record{Time: p.TS, Link: id, OrigLen: uint32(len(p.Data)), Data: p.Data}); err != nil {
			b.Fatal(err)
		}
	}
	if err := ring.Flush(); err != nil {
		b.Fatal(err)
	}
	first, last := g.Pkts[0].TS, g.Pkts[len(g.Pkts)-1].TS
	w := &window.Window{ID: 1, Presses: []window.PressInfo{{Time: time.Unix(0, first+int64(time.Minute)), Synced: true}},
		From: time.Unix(0, first), To: time.Unix(0, last+1)}
	specs := []Spec{{Name: "all"}}
	run := func(withReport bool) time.Duration {
		out := filepath.Join(dir, "out")
		os.RemoveAll(out)
		start := time.Now()
		c, err := Open(ring, w, specs, "bench", out, nil)
		if err != nil {
			b.Fatal(err)
		}
		if !withReport {
			c.an = nil
		}
		if err := c.Step(context.Background(), ring, w.To, true); err != nil {
			b.Fatal(err)
		}
		man, err := c.Finish(nil)
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		if man.Files[0].Packets != uint64(len(g.Pkts)) || (man.Summary != nil) != withReport ||
			withReport && len(man.Summary.RTPStreams) != 4 {
			b.Fatalf("export: %d packets, summary %v", man.Files[0].Packets, man.Summary != nil)
		}
		return d
	}
	var with, without time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		without += run(false)
		with += run(true)
	}
	b.StopTimer()
	n := time.Duration(b.N)
	b.ReportMetric(float64(len(g.Pkts)), "packets")
	b.ReportMetric(float64((without / n).Milliseconds()), "export-ms")
	b.ReportMetric(float64((with / n).Milliseconds()), "with-report-ms")
	b.ReportMetric(float64(with-without)/float64(len(g.Pkts))/float64(b.N), "report-ns/pkt")
	b.ReportMetric(float64(with-without)/float64(without), "added-ratio")
}

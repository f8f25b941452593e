package export

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/probe/internal/pcapfile"
	"github.com/presscap/presscap/probe/internal/window"
	"github.com/presscap/presscap/ringfs"
)

// BenchmarkExportVsTcpdump cuts a 200,000-packet window out of a ring into
// two filtered files, and compares with tcpdump reading the same packets
// from a PCAP file and writing each filter's file (the reference for
// "filter a capture into a file").
func BenchmarkExportVsTcpdump(b *testing.B) {
	netnstest.Require(b, "tcpdump")
	dir := b.TempDir()
	ring, err := ringfs.Create(filepath.Join(dir, "ring"), ringfs.Options{Size: 256 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer ring.Close()
	id, err := ring.AddLink(ringfs.Link{Name: "eth0", LinkType: 1})
	if err != nil {
		b.Fatal(err)
	}
	in, err := os.Create(filepath.Join(dir, "in.pcap"))
	if err != nil {
		b.Fatal(err)
	}
	pw, err := pcapfile.NewPCAP(in, 1, 262144)
	if err != nil {
		b.Fatal(err)
	}
	frames := netnstest.Frames(600)
	t0 := time.Now().Add(-time.Hour).UnixNano()
	const n = 200000
	for i := 0; i < n; i++ {
		f := frames[i%len(frames)]
		ts := t0 + int64(i)*10000
		if err := ring.Append(ringfs.Record{Time: ts, Link: id, OrigLen: uint32(len(f)), Data: f}); err != nil {
			b.Fatal(err)
		}
		pw.WritePacket(ts, uint32(len(f)), f)
	}
	pw.Flush()
	in.Close()
	ring.Flush()
	specs := []Spec{{Name: "plain", Filter: "ether proto 0x88b5"}, {Name: "vlan10", Filter: "vlan 10"}}
	win := &window.Window{ID: 1, Presses: []window.PressInfo{{Time: time.Unix(0, t0+n*5000), Synced: true}},
		From: time.Unix(0, t0), To: time.Unix(0, t0+n*10000)}
	var ours, ref time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := filepath.Join(dir, "out")
		os.RemoveAll(out)
		start := time.Now()
		man, err := Cut(context.Background(), ring, win, specs, "bench", out, nil)
		if err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)
		if man.Files[0].Packets == 0 || man.Files[1].Packets == 0 {
			b.Fatalf("empty export: %+v", man.Files)
		}
		start = time.Now()
		for _, s := range specs {
			cmd := exec.Command("tcpdump", "-r", filepath.Join(dir, "in.pcap"), "-w", filepath.Join(dir, s.Name+".pcap"), s.Filter)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("tcpdump: %v %s", err, out)
			}
		}
		ref += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(ms(ours/time.Duration(b.N)), "export-ms")
	b.ReportMetric(ms(ref/time.Duration(b.N)), "tcpdump-ms")
	b.ReportMetric(float64(ours)/float64(ref), "ratio-vs-tcpdump")
	b.ReportMetric(float64(n)/(float64(ours)/float64(b.N)/1e9), "pkts/s")
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

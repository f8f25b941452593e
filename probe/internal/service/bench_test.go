package service

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/internal/pcapfile"
	"github.com/presscap/presscap/probe/internal/trigger"
	"github.com/presscap/presscap/ringfs"
)

// BenchmarkPressToFiles measures, on a running service capturing a veth
// pair, the time from a key press (input_event bytes written) to its
// acknowledgement, and from the window's end to the files being complete.
// Run with -benchtime Nx: each iteration takes after + ~1 s.
func BenchmarkPressToFiles(b *testing.B) {
	netnstest.Require(b, "ip")
	pair := netnstest.NewPair(b)
	c := config.DefaultConfig()
	c.Hostname = "bench"
	c.Links = []config.Link{{Interface: pair.Host}}
	c.Ring.Size = 64 << 20
	c.Ring.ExpectedMbps = 1
	c.Trigger.Before = config.Duration(time.Second)
	c.Trigger.After = config.Duration(time.Second)
	c.Trigger.InputDir = b.TempDir()
	c.Trigger.Rescan = config.Duration(100 * time.Millisecond)
	c.Storage.FirstUSB = false
	c.Storage.Label = "NOSUCHLABEL"
	c.Storage.DevDir = b.TempDir()
	c.Storage.MountPoint = filepath.Join(b.TempDir(), "mnt")
	c.Storage.FallbackPerm = true
	c.Storage.PermDir = filepath.Join(b.TempDir(), "perm")
	c.Storage.StateDir = filepath.Join(b.TempDir(), "state")
	c.Storage.Retry = config.Duration(100 * time.Millisecond)
	c.Exports = []config.Export{{Name: "plain", Filter: "ether proto 0x88b5"}, {Name: "vlan10", Filter: "vlan 10"}}
	c.Clock.Sync = config.SyncAlways
	c.Status.Listen = nil

	fb := &fakeFeedback{}
	exported := make(chan time.Time, 4)
	svc, err := New(Options{Config: c, Feedback: fb, Identify: r400, // default ExportDelay, as on the device
		OnExport: func(m Manifest, err error) {
			if err != nil {
				b.Error(err)
			}
			exported <- time.Now()
		}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for svc.Storage().State().State != DiskRecording {
		time.Sleep(20 * time.Millisecond)
	}
	stage := filepath.Join(b.TempDir(), "event0")
	if err := mkfifo(stage); err != nil {
		b.Fatal(err)
	}
	w, err := os.OpenFile(stage, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	os.Rename(stage, filepath.Join(c.Trigger.InputDir, "event0"))
	for len(svc.watcher.Devices()) == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	sender := pair.NewSender(b)
	stop := make(chan struct{})
	go func() {
		frames := netnstest.Frames(600)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			sender.Send(frames[i%len(frames)])
		}
	}()
	defer close(stop)

	var acks, files []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fb.mu.Lock()
		n := len(fb.pressed)
		fb.mu.Unlock()
		at := time.Now()
		w.Write(trigger.KeyStroke(at, trigger.KeyPageDown))
		for {
			fb.mu.Lock()
			if len(fb.pressed) > n {
				acks = append(acks, fb.pressed[n].Sub(at))
				fb.mu.Unlock()
				break
			}
			fb.mu.Unlock()
			time.Sleep(100 * time.Microsecond)
		}
		end := at.Truncate(time.Microsecond).Add(c.Trigger.After.D())
		files = append(files, (<-exported).Sub(end))
	}
	b.StopTimer()
	b.ReportMetric(ms(median(acks)), "ack-ms")
	b.ReportMetric(ms(median(files)), "files-after-end-ms")
	b.ReportMetric(ms(maxDur(files)), "max-files-after-end-ms")
}

func mkfifo(path string) error { return exec.Command("mkfifo", path).Run() }

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func maxDur(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

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
	specs := []ExportSpec{{Name: "plain", Filter: "ether proto 0x88b5"}, {Name: "vlan10", Filter: "vlan 10"}}
	win := &Window{ID: 1, Presses: []PressInfo{{Time: time.Unix(0, t0+n*5000), Synced: true}},
		From: time.Unix(0, t0), To: time.Unix(0, t0+n*10000)}
	var ours, ref time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := filepath.Join(dir, "out")
		os.RemoveAll(out)
		start := time.Now()
		man, err := Export(context.Background(), ring, win, specs, "bench", out, nil)
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

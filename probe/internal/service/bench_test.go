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
	"github.com/presscap/presscap/probe/internal/export"
	"github.com/presscap/presscap/probe/internal/storage"
	"github.com/presscap/presscap/probe/internal/trigger"
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
		OnExport: func(m export.Manifest, err error) {
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
	for svc.Storage().State().State != storage.DiskRecording {
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

package upload_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/field"
	"github.com/presscap/presscap/internal/testing/fakeclock"
	"github.com/presscap/presscap/internal/testing/sshdtest"
	"github.com/presscap/presscap/probe/internal/upload"
)

// running is an Uploader.Run in the background on a fake clock.
type running struct {
	u      *upload.Uploader
	ev     *events
	clock  *fakeclock.Clock
	cancel func()
	done   chan struct{}
}

func startRun(t *testing.T, r *rig, clock *fakeclock.Clock) *running {
	t.Helper()
	u, ev := r.newUploader(t, clock)
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{u: u, ev: ev, clock: clock, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(run.done)
		if err := u.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(run.stop)
	return run
}

func (run *running) stop() {
	run.cancel()
	<-run.done
}

// idleUntil waits until Run sleeps on a timer that ends at t.
func (run *running) idleUntil(t *testing.T, at time.Time) {
	t.Helper()
	waitFor(t, "a timer until "+at.String(), func() bool {
		d, ok := run.clock.NextDeadline()
		return ok && d.Equal(at)
	})
}

func berlin(t *testing.T, s string) time.Time {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	v, err := time.ParseInLocation("2006-01-02 15:04:05", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestScheduleDailyAndMissed drives the schedule with a fake clock: nothing
// before 02:00, the upload at 02:00 (Europe/Berlin), then a device that was
// off over the next 02:00 catches up once the clock is synced.
func TestScheduleDailyAndMissed(t *testing.T) {
	r := newRig(t, sshdtest.Options{})
	r.cfg.Time = "02:00"
	r.cfg.WindowEnd = "04:00"
	r.cfg.TimeZone = "Europe/Berlin"
	clock := fakeclock.New(berlin(t, "2026-11-27 01:00:00"))
	run := startRun(t, r, clock)
	slot := berlin(t, "2026-11-27 02:00:00")
	waitFor(t, "the next run in the status", func() bool { return run.u.Status().NextUpload.Equal(slot) })
	a := r.put(t, "a_20261127T020000.000Z_all.pcap", 20000)

	clock.Set(berlin(t, "2026-11-27 01:59:00"))
	run.idleUntil(t, slot)
	if got := names(t, r.queueDir); !reflect.DeepEqual(got, []string{"a_20261127T020000.000Z_all.pcap"}) || len(r.remote(t)) != 0 {
		t.Fatalf("uploaded before the time: queue %v", got)
	}
	clock.Set(slot)
	waitFor(t, "the scheduled upload", func() bool { return run.ev.count(upload.Uploaded) == 1 })
	assertFile(t, filepath.Join(r.remoteDir, "a_20261127T020000.000Z_all.pcap"), a)
	tomorrow := berlin(t, "2026-11-28 02:00:00")
	waitFor(t, "the next day's run in the status", func() bool { return run.u.Status().NextUpload.Equal(tomorrow) })

	// Power off before the next run; on at 09:00 the next day with the
	// clock not yet synced.
	run.stop()
	b := r.put(t, "b_20261127T020000.000Z_all.pcap", 30000)
	clock.SetSynced(false)
	clock.Set(berlin(t, "2026-11-28 09:00:00"))
	run = startRun(t, r, clock)
	for i := 0; i < 3; i++ {
		run.idleUntil(t, clock.Now().Add(5*time.Second))
		clock.Advance(5 * time.Second)
	}
	if got := names(t, r.queueDir); !reflect.DeepEqual(got, []string{"b_20261127T020000.000Z_all.pcap"}) {
		t.Fatalf("uploaded on an unsynced clock: queue %v", got)
	}
	if !run.u.Status().NextUpload.IsZero() {
		t.Fatal("next run planned on an unsynced clock")
	}
	clock.SetSynced(true)
	clock.Advance(5 * time.Second)
	waitFor(t, "the catch-up upload", func() bool { return run.ev.count(upload.Uploaded) == 1 })
	assertFile(t, filepath.Join(r.remoteDir, "b_20261127T020000.000Z_all.pcap"), b)
	waitFor(t, "the next run after the catch-up", func() bool {
		return run.u.Status().NextUpload.Equal(berlin(t, "2026-11-29 02:00:00"))
	})

	// A restart the same day does not run again.
	run.stop()
	r.put(t, "c_20261127T020000.000Z_all.pcap", 100)
	run = startRun(t, r, clock)
	run.idleUntil(t, clock.Now().Add(time.Minute))
	if run.ev.count(upload.Uploading) != 0 {
		t.Fatalf("restart repeated the day's run: %v", run.ev.kinds())
	}
}

// TestScheduleRetryInsideWindow: with the server down the run retries with
// backoff until the window ends; the next day the server is down at first,
// comes up, and the retry inside the window uploads everything.
func TestScheduleRetryInsideWindow(t *testing.T) {
	r := newRig(t, sshdtest.Options{})
	r.cfg.Time = "02:00"
	r.cfg.WindowEnd = "02:30"
	r.cfg.TimeZone = "UTC"
	r.cfg.Retry.Initial = field.Duration(10 * time.Minute)
	r.cfg.Retry.Max = field.Duration(20 * time.Minute)
	utc := func(s string) time.Time {
		v, _ := time.Parse("2006-01-02 15:04", s)
		return v
	}
	clock := fakeclock.New(utc("2026-11-27 01:00"))
	run := startRun(t, r, clock)
	waitFor(t, "the next run", func() bool { return run.u.Status().NextUpload.Equal(utc("2026-11-27 02:00")) })
	a := r.put(t, "a_20261127T020000.000Z_all.pcap", 10000)
	m := r.put(t, "a_20261127T020000.000Z_manifest.json", 100)
	r.srv.Stop()

	clock.Set(utc("2026-11-27 02:00"))
	run.idleUntil(t, utc("2026-11-27 02:10")) // first backoff
	clock.Set(utc("2026-11-27 02:10"))
	// The second backoff (20 min) would end at the window's end: give up.
	waitFor(t, "the end of the day's run", func() bool {
		return run.u.Status().NextUpload.Equal(utc("2026-11-28 02:00"))
	})
	if got := run.ev.kinds(); !reflect.DeepEqual(got, []string{"uploading", "failed", "uploading", "failed"}) {
		t.Fatalf("events %v, want two failed attempts", got)
	}
	st := run.u.Status()
	if st.Files != 2 || st.LastError == "" {
		t.Fatalf("status after failures: %+v", st)
	}
	t.Logf("last error: %s", st.LastError)

	clock.Set(utc("2026-11-28 02:00"))
	run.idleUntil(t, utc("2026-11-28 02:10"))
	r.srv.Up()
	clock.Set(utc("2026-11-28 02:10"))
	waitFor(t, "the retried upload", func() bool { return run.ev.count(upload.Uploaded) == 1 })
	assertFile(t, filepath.Join(r.remoteDir, "a_20261127T020000.000Z_all.pcap"), a)
	assertFile(t, filepath.Join(r.remoteDir, "a_20261127T020000.000Z_manifest.json"), m)
	if n := run.ev.count(upload.Failed); n != 3 {
		t.Fatalf("%d failures, want 3", n)
	}
}

// TestKickAfterCapture uploads right after a saved window, outside the schedule
// and before the clock is synced.
func TestKickAfterCapture(t *testing.T) {
	r := newRig(t, sshdtest.Options{})
	r.cfg.AfterCapture = true
	clock := fakeclock.New(time.Date(2026, 11, 27, 13, 0, 0, 0, time.UTC))
	clock.SetSynced(false)
	run := startRun(t, r, clock)
	run.idleUntil(t, clock.Now().Add(5*time.Second))
	a := r.put(t, "a_20261127T020000.000Z_all.pcap", 1234)
	run.u.Kick()
	waitFor(t, "the after_capture upload", func() bool { return run.ev.count(upload.Uploaded) == 1 })
	assertFile(t, filepath.Join(r.remoteDir, "a_20261127T020000.000Z_all.pcap"), a)
}

// TestWindowEndsMidRun: the file in flight when the window ends completes;
// no new file starts, so the rest (and the manifest) waits for the next day.
// A window saved during the upload, inside the upload window, goes in the same run.
func TestWindowEndsMidRun(t *testing.T) {
	r := newRig(t, sshdtest.Options{})
	r.cfg.Time, r.cfg.WindowEnd, r.cfg.TimeZone = "02:00", "03:00", "UTC"
	r.cfg.BandwidthLimitKbps = 8000 // 1 MB/s: a 1 MiB file takes a second
	day := func(d, h, m int) time.Time { return time.Date(2026, 11, d, h, m, 0, 0, time.UTC) }
	clock := fakeclock.New(day(27, 1, 0))
	run := startRun(t, r, clock)
	waitFor(t, "the next run", func() bool { return run.u.Status().NextUpload.Equal(day(27, 2, 0)) })
	a := r.put(t, "a_20261127T020000.000Z_all.pcap", 1<<20)
	r.put(t, "b_20261127T020000.000Z_all.pcap", 1000)
	r.put(t, "b_20261127T020000.000Z_manifest.json", 100)

	// Day 1: while a.pcap is on its way, a saved window arrives (c.pcap, sorted
	// after b) and is uploaded in the same run.
	clock.Set(day(27, 2, 0))
	waitFor(t, "a.pcap.part on the server", func() bool {
		_, err := os.Stat(filepath.Join(r.remoteDir, "a_20261127T020000.000Z_all.pcap.part"))
		return err == nil
	})
	c := r.put(t, "c_20261127T020000.000Z_all.pcap", 500)
	waitFor(t, "the end of the run", func() bool { return run.u.Status().NextUpload.Equal(day(28, 2, 0)) })
	assertFile(t, filepath.Join(r.remoteDir, "c_20261127T020000.000Z_all.pcap"), c)
	if got := names(t, r.queueDir); len(got) != 0 {
		t.Fatalf("queue after day 1: %v", got)
	}

	// Day 2: the window ends while d.pcap is in flight.
	d := r.put(t, "d_20261127T020000.000Z_all.pcap", 1<<20)
	r.put(t, "e_20261127T020000.000Z_all.pcap", 1000)
	r.put(t, "e_20261127T020000.000Z_manifest.json", 100)
	clock.Set(day(28, 2, 0))
	waitFor(t, "d.pcap.part on the server", func() bool {
		_, err := os.Stat(filepath.Join(r.remoteDir, "d_20261127T020000.000Z_all.pcap.part"))
		return err == nil
	})
	clock.Set(day(28, 3, 0))
	waitFor(t, "the end of the run", func() bool { return run.u.Status().NextUpload.Equal(day(29, 2, 0)) })
	assertFile(t, filepath.Join(r.remoteDir, "a_20261127T020000.000Z_all.pcap"), a)
	assertFile(t, filepath.Join(r.remoteDir, "d_20261127T020000.000Z_all.pcap"), d)
	if got := names(t, r.queueDir); !reflect.DeepEqual(got, []string{"e_20261127T020000.000Z_all.pcap", "e_20261127T020000.000Z_manifest.json"}) {
		t.Fatalf("queue after the window: %v, want e.pcap and its manifest", got)
	}
	if st := run.u.Status(); !strings.HasPrefix(st.LastResult, "window ended after 1 files") {
		t.Fatalf("last result %q", st.LastResult)
	}
	if ev := run.ev.kinds(); ev[len(ev)-1] != "uploaded" {
		t.Fatalf("events %v", ev)
	}
}

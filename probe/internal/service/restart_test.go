package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/loopdisk"
	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/internal/clock"
	"github.com/presscap/presscap/probe/internal/export"
	"github.com/presscap/presscap/probe/internal/pcapfile/pcapfiletest"
	"github.com/presscap/presscap/probe/internal/storage"
	"github.com/presscap/presscap/probe/internal/window"
)

func manifests(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*_manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPressSurvivesRestart: a press, then the service stops before the
// window ends. The pending record is there right after the press (after
// the ack); the stop saves nothing with a cancelled context and keeps the
// record; the next service on the same ring and state dir saves the window
// at start, equal to what tcpdump saw, marked recovered, and removes the
// record; corrupt records are reported and moved aside; a third start does
// not save the window again and still takes presses.
func TestPressSurvivesRestart(t *testing.T) {
	netnstest.Require(t, "ip", "tcpdump", "capinfos", "tshark")
	pair := netnstest.NewPair(t)
	c := permConfig(t, pair.Host)
	// Room for a loaded machine to send the window's frames and stop the
	// service before the window ends.
	c.Trigger.After = config.Duration(4 * time.Second)
	c.Exports = []config.Export{{Name: "all"}}
	queue := filepath.Join(c.Storage.PermDir, c.Storage.QueueDir)
	pendDir := filepath.Join(c.Storage.StateDir, window.PendingDirName)
	oracle := netnstest.StartTcpdump(t, pair.Host, 262144, "")

	var mu sync.Mutex
	var saved []time.Time
	r1, stop1 := startStoppable(t, c, func(o *Options) {
		o.OnPending = func(op string, id int, err error) {
			if op == "saved" && err == nil {
				mu.Lock()
				saved = append(saved, time.Now())
				mu.Unlock()
			}
		}
	})
	sender, frames, base := warmUp(t, r1, pair)
	p, err := r1.svc.Trigger("local", "")
	if err != nil {
		t.Fatal(err)
	}
	to := p.Time.Add(c.Trigger.After.D())
	rec := filepath.Join(pendDir, "1.json")
	// Saved means written and synced: OnPending says so, after the file
	// already shows.
	testtool.WaitFor(t, "the pending record", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		_, err := os.Stat(rec)
		return err == nil && len(saved) > 0
	})
	if !time.Now().Before(to) {
		t.Fatalf("the machine is too slow for this test: the record appeared after the window's end")
	}
	r1.fb.mu.Lock()
	mu.Lock()
	if len(r1.fb.pressed) != 1 || len(saved) == 0 || saved[0].Before(r1.fb.pressed[0]) {
		t.Errorf("ack at %v, pending record saved at %v: the ack must come first", r1.fb.pressed, saved)
	}
	mu.Unlock()
	r1.fb.mu.Unlock()
	if b, err := os.ReadFile(rec); err != nil {
		t.Fatal(err)
	} else if w, err := window.ParseRecord(rec, b); err != nil || w.ID != 1 || !w.From.Equal(p.Time.Add(-time.Second)) || !w.To.Equal(to) || len(w.Presses) != 1 {
		t.Fatalf("pending record %s: %v %+v", b, err, w)
	}

	for _, f := range frames[:40] {
		if err := sender.Send(f); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	testtool.WaitFor(t, "the 40 frames in the ring", 20*time.Second, func() bool {
		return r1.svc.Snapshot().Links[0].Written >= base+40
	})
	stop1()
	stopped := time.Now()
	if !stopped.Before(to) {
		t.Fatalf("the machine is too slow for this test: the service stopped %v after the window's end", stopped.Sub(to))
	}
	select {
	case e := <-r1.exported:
		t.Fatalf("the stopping service exported: %+v %v", e.man, e.err)
	default:
	}
	if _, err := os.Stat(rec); err != nil {
		t.Fatalf("pending record after the stop: %v", err)
	}
	if l := r1.log.String(); !strings.Contains(l, "window #1 is still open at the stop") || !strings.Contains(l, "saved at the next start") {
		t.Errorf("the stop's log does not say the window is saved at the next start:\n%s", l)
	}
	if len(manifests(t, queue)) != 0 {
		t.Fatal("files written before the window ended")
	}

	// The window ends while the service is down: the next start, on a
	// clock past the end, saves it.
	r2, stop2 := startStoppable(t, c, func(o *Options) { o.Time = newFakeTime(t, to.Add(200*time.Millisecond)) })
	res := r2.waitExport(t, 20*time.Second)
	if res.err != nil {
		t.Fatalf("recovered export: %v\nlog:\n%s", res.err, r2.log)
	}
	m := res.man
	if m.CaptureNotCaughtUp != nil {
		t.Errorf("recovered window reported as not caught up: %+v", m.CaptureNotCaughtUp)
	}
	if !m.Recovered || m.ServiceStarted.Before(stopped) || m.ServiceStarted.After(res.when) || !m.PressTime.Equal(p.Time) || !m.To.Equal(to) {
		t.Errorf("manifest: recovered %v, service started %v (stop %v), press %v, to %v", m.Recovered, m.ServiceStarted, stopped, m.PressTime, m.To)
	}
	path := filepath.Join(queue, m.Files[0].File)
	got := readPCAP(t, path)
	want := inWindow(oracle.Settle(t, windowHolds(m, 40)), m)
	if len(want) != 40 || len(got) != 40 || m.Files[0].Packets != 40 {
		t.Fatalf("file %d packets (manifest %d), tcpdump %d in the window, sent 40", len(got), m.Files[0].Packets, len(want))
	}
	for i := range got {
		if got[i].ts != want[i].Time || int(got[i].origLen) != want[i].OrigLen || !bytes.Equal(got[i].data, want[i].Data) {
			t.Fatalf("packet %d: saved ts %d len %d, tcpdump ts %d len %d", i, got[i].ts, len(got[i].data), want[i].Time, len(want[i].Data))
		}
	}
	if n := pcapfiletest.Validate(t, path); n != 40 {
		t.Errorf("tshark reads %d packets", n)
	}
	mfs := manifests(t, queue)
	if len(mfs) != 1 {
		t.Fatalf("manifests %v", mfs)
	}
	var raw map[string]any
	if b, err := os.ReadFile(mfs[0]); err != nil || json.Unmarshal(b, &raw) != nil || raw["recovered"] != true || raw["service_started"] == nil {
		t.Errorf("manifest file %s does not say recovered and when the service started: %v %v", mfs[0], err, raw)
	}
	testtool.WaitFor(t, "the pending record removed", 10*time.Second, func() bool {
		_, err := os.Stat(rec)
		return errors.Is(err, os.ErrNotExist)
	})
	if l := r2.log.String(); !strings.Contains(l, "window #1 recovered after a restart") || !strings.Contains(l, "packets from the stop until the service started") {
		t.Errorf("the restart's log does not say the window was recovered:\n%s", l)
	}
	// What the first run wrote from the press on was made durable at the
	// stop: the restart continues it instead of cutting the window again.
	if l := r2.log.String(); !strings.Contains(l, "window #1: continuing the files written before the restart") {
		t.Errorf("the restart did not continue the files of the first run:\n%s", l)
	}
	stop2()

	// Corrupt records: cut short, a wrong type, a field that makes no sense.
	bad := map[string]string{
		"7.json": `{"id": 7, "from": "2026-11-27T10:00:00Z", "to": `,
		"8.json": `{"id": 8, "from": "2026-11-27T10:00:00Z", "to": "2026-11-27T10:00:04Z", "presses": "none"}`,
		"9.json": `{"id": 9, "from": "2026-11-27T10:00:04Z", "to": "2026-11-27T10:00:00Z", "presses": [{"time": "2026-11-27T10:00:01Z"}]}`,
	}
	for name, body := range bad {
		if err := os.WriteFile(filepath.Join(pendDir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fc3 := newFakeTime(t, time.Now())
	r3, _ := startStoppable(t, c, func(o *Options) { o.Time = fc3 })
	testtool.WaitFor(t, "recording", 20*time.Second, func() bool { return r3.svc.Storage().State().State == storage.DiskRecording })
	p3, err := r3.svc.Trigger("local", "")
	if err != nil {
		t.Fatal(err)
	}
	if p3.Window <= 9 || p3.Decision != "opened" {
		t.Errorf("new press %+v: its window id must be above the records' (9)", p3)
	}
	fc3.Set(p3.Time.Add(c.Trigger.After.D() + time.Second))
	res3 := r3.waitExport(t, 20*time.Second)
	if res3.err != nil || res3.man.Recovered || !res3.man.PressTime.Equal(p3.Time) {
		t.Fatalf("third service's export: %v %+v", res3.err, res3.man)
	}
	select {
	case e := <-r3.exported:
		t.Errorf("a second export after the second restart: %+v", e.man)
	case <-time.After(time.Second):
	}
	if n := len(manifests(t, queue)); n != 2 {
		t.Errorf("%d manifests, want 2 (the recovered window once, the new press)", n)
	}
	l := r3.log.String()
	for name, what := range map[string]string{"7.json": "at byte", "8.json": "field presses", "9.json": "field to"} {
		if !strings.Contains(l, filepath.Join(pendDir, name)+": "+what) {
			t.Errorf("log does not report %s with %q:\n%s", name, what, l)
		}
		if _, err := os.Stat(filepath.Join(pendDir, name+".corrupt")); err != nil {
			t.Errorf("%s not moved aside: %v", name, err)
		}
		if _, err := os.Stat(filepath.Join(pendDir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still in place: %v", name, err)
		}
	}
	if strings.Contains(l, "window #1 recovered") {
		t.Errorf("the second restart recovered window #1 again:\n%s", l)
	}
}

// TestRecoveredOpenWindow: a record whose window is still open at start
// (synced clock) continues: a new press inside it extends it, and it is
// saved once, at its end, marked recovered. The service runs on a fake
// clock: the window's 11 s pass when the test says so.
func TestRecoveredOpenWindow(t *testing.T) {
	netnstest.Require(t, "ip")
	pair := netnstest.NewPair(t)
	c := permConfig(t, pair.Host)
	c.Trigger.After = config.Duration(11 * time.Second)
	c.Exports = []config.Export{{Name: "all"}}
	fc := newFakeTime(t, time.Now())
	now := fc.Now()
	w := window.Window{ID: 4, From: now.Add(-2 * time.Second), To: now.Add(10 * time.Second),
		Presses: []window.PressInfo{{Time: now.Add(-time.Second), Synced: true, Source: "local"}}}
	store := window.Store{Dir: filepath.Join(c.Storage.StateDir, window.PendingDirName)}
	if err := store.Save(w); err != nil {
		t.Fatal(err)
	}
	const delay = 500 * time.Millisecond // startStoppable's ExportDelay
	r, _ := startStoppable(t, c, func(o *Options) { o.Time = fc })
	testtool.WaitFor(t, "recording", 20*time.Second, func() bool { return r.svc.Storage().State().State == storage.DiskRecording })
	p, err := r.svc.Trigger("local", "")
	if err != nil {
		t.Fatal(err)
	}
	end := p.Time.Add(11 * time.Second)
	if p.Decision != "extended" || p.Window != 4 {
		t.Fatalf("press during the recovered window: %+v, want extended #4", p)
	}

	// Just before the extended end (past the recorded one) the window
	// stays open: once the service has looked at the clock again (a new
	// wait registered), it is still pending.
	fc.Set(end.Add(delay - time.Millisecond))
	fc.lookedAt(t, fc.Waiters())
	if pend := r.svc.Snapshot().Pending; len(pend) != 1 || pend[0].ID != 4 || !pend[0].To.Equal(end) {
		t.Fatalf("before the end: pending %+v, want #4 until %v", pend, end)
	}

	fc.Set(end.Add(delay))
	res := r.waitExport(t, 30*time.Second)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !res.man.Recovered || len(res.man.Presses) != 2 || !res.man.To.Equal(end) {
		t.Errorf("manifest: recovered %v, %d presses, to %v", res.man.Recovered, len(res.man.Presses), res.man.To)
	}
	if res.when.Before(res.man.To) {
		t.Errorf("saved at %v, before the window's end %v", res.when, res.man.To)
	}
	testtool.WaitFor(t, "the pending record removed", 10*time.Second, func() bool {
		_, err := os.Stat(store.Path(4))
		return errors.Is(err, os.ErrNotExist)
	})
}

// TestRecoveredWindowUnsyncedClock: without a synced clock (the Pi has no
// RTC) a recovered window's end cannot be judged: it is saved at once,
// not when a clock that may be far off reaches its end.
func TestRecoveredWindowUnsyncedClock(t *testing.T) {
	netnstest.Require(t, "ip")
	pair := netnstest.NewPair(t)
	c := permConfig(t, pair.Host)
	c.Exports = []config.Export{{Name: "all"}}
	now := time.Now()
	// Recovered once already, by a start an hour ago: the manifest must
	// name this start, where the last gap ends.
	w := window.Window{ID: 2, From: now.Add(-time.Second), To: now.Add(time.Minute),
		Presses: []window.PressInfo{{Time: now, Source: "local"}}, Recovered: true, Restarted: now.Add(-time.Hour),
		// Another boot: its boot clock says nothing about this one.
		BootID: "00000000-0000-0000-0000-000000000000", EndBoot: 1 << 62}
	store := window.Store{Dir: filepath.Join(c.Storage.StateDir, window.PendingDirName)}
	if err := store.Save(w); err != nil {
		t.Fatal(err)
	}
	r, _ := startStoppable(t, c, func(o *Options) { o.Clock = clock.Fixed(false) })
	res := r.waitExport(t, 20*time.Second)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !res.man.Recovered || res.man.ClockSynced || !res.when.Before(w.To) {
		t.Errorf("recovered %v, synced %v, saved at %v (window end %v)", res.man.Recovered, res.man.ClockSynced, res.when, w.To)
	}
	if res.man.ServiceStarted.Before(now) || res.man.ServiceStarted.After(res.when) {
		t.Errorf("manifest service_started %v, want this start (after %v)", res.man.ServiceStarted, now)
	}
	if s := r.svc.Snapshot(); len(s.Pending) != 0 || len(s.Presses) != 1 || s.Presses[0].Decision != "recovered" || !s.Presses[0].Done {
		t.Errorf("status: pending %+v presses %+v", s.Pending, s.Presses)
	}
	testtool.WaitFor(t, "the pending record removed", 10*time.Second, func() bool {
		_, err := os.Stat(store.Path(2))
		return errors.Is(err, os.ErrNotExist)
	})
}

// TestRecoveredWaitsForTheDisk: a recovered window whose end has passed
// waits while the USB disk is missing (no failed save, the record stays)
// and is saved as soon as the disk is back and the ring open.
func TestRecoveredWaitsForTheDisk(t *testing.T) {
	netnstest.Require(t, "ip", "mkfs.ext4", "losetup")
	pair := netnstest.NewPair(t)
	disk := loopdisk.New(t, 160, false)
	disk.Pull(t)
	c := testConfig(t, pair.Host)
	c.Storage.Label, c.Storage.DevDir = disk.Label, disk.DevDir
	c.Exports = []config.Export{{Name: "all"}}
	now := time.Now()
	w := window.Window{ID: 5, From: now.Add(-3 * time.Second), To: now.Add(-time.Second),
		Presses: []window.PressInfo{{Time: now.Add(-2 * time.Second), Synced: true, Source: "local"}}}
	store := window.Store{Dir: filepath.Join(c.Storage.StateDir, window.PendingDirName)}
	if err := store.Save(w); err != nil {
		t.Fatal(err)
	}
	r, _ := startStoppable(t, c, nil)
	// Missing is also the state before the first look: wait for the
	// look's verdict (its error), so the wait below covers a seen absence.
	testtool.WaitFor(t, "no disk found", 20*time.Second, func() bool {
		st := r.svc.Storage().State()
		return st.State == storage.DiskMissing && strings.Contains(st.Error, "no disk")
	})
	select {
	case e := <-r.exported:
		t.Fatalf("saved without a disk: %+v %v", e.man, e.err)
	case <-time.After(1500 * time.Millisecond):
	}
	if _, err := os.Stat(store.Path(5)); err != nil {
		t.Fatalf("pending record while the disk is missing: %v", err)
	}
	plugged := time.Now()
	disk.Plug(t)
	res := r.waitExport(t, 20*time.Second)
	if res.err != nil || !res.man.Recovered || res.when.Before(plugged) || len(res.man.Files) != 1 {
		t.Fatalf("export after the disk came back: %v %+v", res.err, res.man)
	}
	if _, err := os.Stat(filepath.Join(c.Storage.MountPoint, c.Storage.QueueDir, res.man.Files[0].File)); err != nil {
		t.Error(err)
	}
	testtool.WaitFor(t, "the pending record removed", 10*time.Second, func() bool {
		_, err := os.Stat(store.Path(5))
		return errors.Is(err, os.ErrNotExist)
	})
}

// TestRecoveredAlreadySaved: a power cut between a window's files and the
// removal of its record brings the record back; the next start finds the
// manifest in the queue or in the upload's sent folder and does not save
// the window again (the complete files stay as they are), it removes the
// record and says so.
func TestRecoveredAlreadySaved(t *testing.T) {
	netnstest.Require(t, "ip")
	for _, sent := range []bool{false, true} {
		t.Run(fmt.Sprintf("sent=%v", sent), func(t *testing.T) {
			pair := netnstest.NewPair(t)
			c := permConfig(t, pair.Host)
			c.Exports = []config.Export{{Name: "all"}}
			dir := filepath.Join(c.Storage.PermDir, c.Storage.QueueDir)
			if sent {
				c.Upload.SentDir = "sent"
				dir = filepath.Join(dir, "sent")
			}
			now := time.Now()
			w := window.Window{ID: 6, From: now.Add(-3 * time.Second), To: now.Add(-time.Second),
				Presses: []window.PressInfo{{Time: now.Add(-2 * time.Second), Synced: true, Source: "local"}}}
			store := window.Store{Dir: filepath.Join(c.Storage.StateDir, window.PendingDirName)}
			if err := store.Save(w); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			man := filepath.Join(dir, export.FileBase(c.Hostname, &w)+"_manifest.json")
			const body = `{"complete": true}` + "\n"
			if err := os.WriteFile(man, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			r, _ := startStoppable(t, c, nil)
			testtool.WaitFor(t, "the pending record removed", 20*time.Second, func() bool {
				_, err := os.Stat(store.Path(6))
				return errors.Is(err, os.ErrNotExist)
			})
			select {
			case e := <-r.exported:
				t.Fatalf("saved again: %+v %v", e.man, e.err)
			case <-time.After(time.Second):
			}
			if b, err := os.ReadFile(man); err != nil || string(b) != body {
				t.Errorf("the manifest saved before the restart changed: %q %v", b, err)
			}
			if l := r.log.String(); !strings.Contains(l, "window #6: already saved before the restart ("+man+" exists)") {
				t.Errorf("the log does not say the window was already saved:\n%s", l)
			}
			if s := r.svc.Snapshot(); len(s.Presses) != 1 || !s.Presses[0].Done {
				t.Errorf("status presses %+v", s.Presses)
			}
		})
	}
}

// TestRecoveredWaitsForItsRing: with storage.fallback_perm and the USB
// disk slow to appear at boot, the ring open at the start is the /perm
// one, which never held the recovered window: the window waits (record
// kept, the log says why) and is cut from the USB disk's ring once the
// disk is plugged and the storage leaves the fallback.
func TestRecoveredWaitsForItsRing(t *testing.T) {
	netnstest.Require(t, "ip", "mkfs.ext4", "losetup")
	pair := netnstest.NewPair(t)
	disk := loopdisk.New(t, 160, false)
	c := testConfig(t, pair.Host)
	c.Storage.Label, c.Storage.DevDir = disk.Label, disk.DevDir
	c.Storage.FallbackPerm = true
	c.Storage.PermDir = filepath.Join(t.TempDir(), "perm")
	c.Exports = []config.Export{{Name: "all"}}

	// The run before the restart: its ring is on the USB disk.
	r1, stop1 := startStoppable(t, c, nil)
	testtool.WaitFor(t, "recording on the disk", 20*time.Second, func() bool {
		st := r1.svc.Storage().State()
		return st.State == storage.DiskRecording && st.How != "fallback_perm"
	})
	usbRing := r1.svc.Storage().RingID()
	if usbRing == "" {
		t.Fatal("no ring identity")
	}
	stop1()
	disk.Pull(t)

	now := time.Now()
	w := window.Window{ID: 5, From: now.Add(-3 * time.Second), To: now.Add(-time.Second), Ring: usbRing,
		Presses: []window.PressInfo{{Time: now.Add(-2 * time.Second), Synced: true, Source: "local"}}}
	store := window.Store{Dir: filepath.Join(c.Storage.StateDir, window.PendingDirName)}
	if err := store.Save(w); err != nil {
		t.Fatal(err)
	}
	r, _ := startStoppable(t, c, nil)
	testtool.WaitFor(t, "recording on /perm", 20*time.Second, func() bool {
		st := r.svc.Storage().State()
		return st.State == storage.DiskRecording && st.How == "fallback_perm"
	})
	permRing := r.svc.Storage().RingID()
	if permRing == "" || permRing == usbRing {
		t.Fatalf("ring identities: /perm %q, USB disk %q", permRing, usbRing)
	}
	testtool.WaitFor(t, "the log saying why the window waits", 10*time.Second, func() bool {
		return strings.Contains(r.log.String(), "window #5 waits for the ring it was recorded on ("+usbRing+"): the open ring "+permRing)
	})
	select {
	case e := <-r.exported:
		t.Fatalf("saved from the /perm ring: %+v %v", e.man, e.err)
	case <-time.After(1500 * time.Millisecond):
	}
	if _, err := os.Stat(store.Path(5)); err != nil {
		t.Fatalf("pending record while its ring is missing: %v", err)
	}
	disk.Plug(t)
	res := r.waitExport(t, 30*time.Second)
	if res.err != nil || !res.man.Recovered || len(res.man.Files) != 1 {
		t.Fatalf("export once the disk is back: %v %+v\n%s", res.err, res.man, r.log)
	}
	if got := r.svc.Storage().RingID(); got != usbRing {
		t.Errorf("ring after the plug %q, want the USB disk's %q", got, usbRing)
	}
	if _, err := os.Stat(filepath.Join(c.Storage.MountPoint, c.Storage.QueueDir, res.man.Files[0].File)); err != nil {
		t.Error(err)
	}
	if !strings.Contains(r.log.String(), "leaving the /perm fallback") {
		t.Errorf("the log does not say the storage left /perm:\n%s", r.log)
	}
	testtool.WaitFor(t, "the pending record removed", 10*time.Second, func() bool {
		_, err := os.Stat(store.Path(5))
		return errors.Is(err, os.ErrNotExist)
	})
}

// TestRecoveryFailsLoudly: a pending directory that cannot be listed is
// logged as a failed recovery and sounds the fault signal.
func TestRecoveryFailsLoudly(t *testing.T) {
	netnstest.Require(t, "ip")
	pair := netnstest.NewPair(t)
	c := permConfig(t, pair.Host)
	if err := os.MkdirAll(c.Storage.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.Storage.StateDir, window.PendingDirName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r, _ := startStoppable(t, c, nil)
	testtool.WaitFor(t, "the failed recovery in the log", 10*time.Second, func() bool {
		return strings.Contains(r.log.String(), "RECOVERY FAILED: pending records:")
	})
	r.fb.mu.Lock()
	faults := fmt.Sprint(r.fb.faults)
	r.fb.mu.Unlock()
	if !strings.Contains(faults, "pending records unreadable") {
		t.Errorf("faults %s", faults)
	}
}

// TestRecoveredSameBootUnsynced: a service that crashed and restarts in
// the same boot, with the clock not synced (as under clock.sync gokrazy),
// waits for a still-open window's end on the boot clock instead of
// saving it at once with its tail cut. The service runs on a fake clock
// whose boot clock moves with it.
func TestRecoveredSameBootUnsynced(t *testing.T) {
	netnstest.Require(t, "ip")
	pair := netnstest.NewPair(t)
	c := permConfig(t, pair.Host)
	c.Exports = []config.Export{{Name: "all"}}
	boot := clock.BootID()
	fc := newFakeTime(t, time.Now())
	bt, _ := fc.BootTime()
	if boot == "" {
		t.Fatalf("no boot id (%s) on this machine", "/proc/sys/kernel/random/boot_id")
	}
	now := fc.Now()
	const left = 4 * time.Second
	const delay = 500 * time.Millisecond // startStoppable's ExportDelay
	// The wall clock end is a minute away (an unsynced clock may be
	// anywhere); the boot clock says 4 s.
	w := window.Window{ID: 3, From: now.Add(-time.Second), To: now.Add(time.Minute), BootID: boot, EndBoot: bt + left,
		Presses: []window.PressInfo{{Time: now, Source: "local"}}}
	store := window.Store{Dir: filepath.Join(c.Storage.StateDir, window.PendingDirName)}
	if err := store.Save(w); err != nil {
		t.Fatal(err)
	}
	r, _ := startStoppable(t, c, func(o *Options) { o.Clock, o.Time = clock.Fixed(false), fc })
	testtool.WaitFor(t, "the recovered window", 20*time.Second, func() bool { return len(r.svc.Snapshot().Pending) == 1 })
	// Just before the boot clock's end it is still open.
	fc.Set(now.Add(left + delay - time.Millisecond))
	fc.lookedAt(t, fc.Waiters())
	if pend := r.svc.Snapshot().Pending; len(pend) != 1 || pend[0].ID != 3 {
		t.Fatalf("before the boot clock's end: pending %+v, want #3", pend)
	}
	fc.Set(now.Add(left + delay))
	res := r.waitExport(t, 30*time.Second)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.when.Before(now.Add(left)) || !res.when.Before(w.To) {
		t.Errorf("saved at %v: want after the boot clock's end %v, before the wall clock's %v", res.when, now.Add(left), w.To)
	}
	if !res.man.Recovered {
		t.Error("not marked recovered")
	}
	if l := r.log.String(); !strings.Contains(l, "window #3 recovered after a restart in the same boot") || !strings.Contains(l, "still open for") {
		t.Errorf("the log does not say the window continues within the same boot:\n%s", l)
	}
}

package update

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeDevice records the guard's calls to gokrazy.
type fakeDevice struct {
	mu       sync.Mutex
	posts    []string
	failLeft int // /update/switch answers an error this many times
	reboots  int
}

func (d *fakeDevice) Post(_ context.Context, p string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p == "/update/switch" && d.failLeft > 0 {
		d.failLeft--
		return errors.New("500 Internal Server Error")
	}
	d.posts = append(d.posts, p)
	return nil
}

func (d *fakeDevice) reboot(context.Context) error {
	d.mu.Lock()
	d.reboots++
	d.mu.Unlock()
	return nil
}

// guardCase is one start of the probe with a record on /perm.
type guardCase struct {
	rec     Record
	running string
	boot    string
	upAt    time.Duration // uptime when the probe starts
	// healthyAt is when (after start) the build shows health; <0 never.
	healthyAt time.Duration
	health    Health
	failLeft  int
}

const (
	buildA = "2026-12-01T00:00:00Z"
	buildB = "2026-12-06T22:00:00Z"
)

func trialRecord(need Health, started bool) Record {
	return Record{Trial: &Trial{Version: buildB, From: buildA, InstallBoot: "boot-1", Started: started,
		ConfirmWithin: 10 * time.Minute, Need: need}}
}

// run runs the guard in a bubble and returns what it did and how long it
// took on the bubble's clock.
func (gc guardCase) run(t *testing.T) (rec Record, dev *fakeDevice, took time.Duration, err error) {
	t.Helper()
	store := Store{Dir: t.TempDir()}
	if err := store.Save(gc.rec); err != nil {
		t.Fatal(err)
	}
	dev = &fakeDevice{failLeft: gc.failLeft}
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		g := &Guard{Store: store, Running: gc.running, BootID: gc.boot, Device: dev, Reboot: dev.reboot,
			Uptime: func() (time.Duration, error) { return gc.upAt + time.Since(start), nil },
			Health: func() Health {
				if gc.healthyAt >= 0 && time.Since(start) >= gc.healthyAt {
					return gc.health
				}
				return Health{}
			},
			Logf: t.Logf}
		err = g.Run(context.Background())
		took = time.Since(start)
	})
	rec, lerr := store.Load()
	if lerr != nil {
		t.Fatal(lerr)
	}
	return rec, dev, took, err
}

// TestGuardConfirmsWhenHealthy: the new build confirms (/update/switch)
// as soon as it shows what the old build showed, not before, and the
// record says it was updated from the old build.
func TestGuardConfirmsWhenHealthy(t *testing.T) {
	need := Health{Recording: true, Disk: true, Server: true}
	rec, dev, took, err := guardCase{rec: trialRecord(need, false), running: buildB, boot: "boot-2", upAt: 20 * time.Second,
		healthyAt: 45 * time.Second, health: need}.run(t)
	if err != nil {
		t.Fatal(err)
	}
	if took < 45*time.Second || took > 47*time.Second {
		t.Errorf("confirmed after %v, want at 45 s (the first health check that passes)", took)
	}
	if len(dev.posts) != 1 || dev.posts[0] != "/update/switch" || dev.reboots != 0 {
		t.Errorf("device calls %v, %d reboots; want one /update/switch, no reboot", dev.posts, dev.reboots)
	}
	if rec.Trial != nil || rec.UpdatedFrom != buildA || rec.Confirmed != buildB || len(rec.Failed) != 0 {
		t.Errorf("record after confirming: %+v", rec)
	}
}

// TestGuardPartialHealthIsNotEnough: recording but no server answer by
// the deadline is a failure naming what was missing; the device reboots
// into the old root and nothing is confirmed.
func TestGuardPartialHealthIsNotEnough(t *testing.T) {
	need := Health{Recording: true, Disk: true, Server: true}
	rec, dev, took, err := guardCase{rec: trialRecord(need, false), running: buildB, boot: "boot-2", upAt: time.Minute,
		healthyAt: 0, health: Health{Recording: true, Disk: true}}.run(t)
	if err == nil || !strings.Contains(err.Error(), "server not reached") {
		t.Errorf("error %v, want the missing server named", err)
	}
	if took != 9*time.Minute {
		t.Errorf("gave up after %v, want 9m (10m after boot, started 1m after boot)", took)
	}
	if len(dev.posts) != 0 || dev.reboots != 1 {
		t.Errorf("device calls %v, %d reboots; want no switch, one reboot", dev.posts, dev.reboots)
	}
	if rec.Trial != nil || len(rec.Failed) != 1 || rec.Failed[0].Version != buildB || !strings.Contains(rec.Failed[0].Reason, "server not reached") ||
		!rec.Failed[0].ServerOnly || rec.Failed[0].Tries != 1 {
		t.Errorf("record after the failure: %+v", rec)
	}
}

// TestGuardFailureTries: a failure that lacked more than the server is
// not server-only; a build failing again keeps one entry with its tries
// counted, so its one retry is spent.
func TestGuardFailureTries(t *testing.T) {
	need := Health{Recording: true, Disk: true, Server: true}
	rec, _, _, _ := guardCase{rec: trialRecord(need, false), running: buildB, boot: "boot-2", healthyAt: 0, health: Health{Recording: true}}.run(t)
	if len(rec.Failed) != 1 || rec.Failed[0].ServerOnly {
		t.Errorf("disk and server missing: %+v, want a failure that is not server-only", rec.Failed)
	}
	again := trialRecord(need, false)
	again.Failed = []Failure{{Version: buildB, Reason: "not healthy within 10m0s of its boot: server not reached", ServerOnly: true, Tries: 1}}
	rec, _, _, _ = guardCase{rec: again, running: buildB, boot: "boot-2", healthyAt: 0, health: Health{Recording: true, Disk: true}}.run(t)
	if len(rec.Failed) != 1 || rec.Failed[0].Tries != 2 || !rec.Failed[0].ServerOnly || RetryDue(rec.Failed[0], rec.Failed[0].Time.Add(365*24*time.Hour)) {
		t.Errorf("second failure: %+v, want one entry, 2 tries, no retry due ever", rec.Failed)
	}
}

// TestGuardRestartPastDeadline: a probe that keeps exiting (gokrazy
// restarts it) is judged at the start after the deadline: reboot at once.
func TestGuardRestartPastDeadline(t *testing.T) {
	rec, dev, took, err := guardCase{rec: trialRecord(Health{Recording: true}, true), running: buildB, boot: "boot-2",
		upAt: 10*time.Minute + time.Second, healthyAt: -1}.run(t)
	if err == nil || took != 0 || dev.reboots != 1 || len(dev.posts) != 0 {
		t.Errorf("err %v after %v, %d reboots, posts %v; want an immediate reboot", err, took, dev.reboots, dev.posts)
	}
	if len(rec.Failed) != 1 || rec.Trial != nil {
		t.Errorf("record %+v", rec)
	}
}

// TestGuardOldBuildNeedsNoDisk: an old build that had no disk when it
// installed asks no disk of the new one: a customer who unplugged the disk
// does not roll back a good build.
func TestGuardOldBuildNeedsNoDisk(t *testing.T) {
	rec, dev, _, err := guardCase{rec: trialRecord(Health{Server: true}, false), running: buildB, boot: "boot-2",
		healthyAt: 5 * time.Second, health: Health{Server: true}}.run(t)
	if err != nil || len(dev.posts) != 1 || rec.Confirmed != buildB {
		t.Errorf("err %v, posts %v, record %+v; want confirmed", err, dev.posts, rec)
	}
}

// TestGuardRetriesTheSwitch: a switch the device refuses is tried again.
func TestGuardRetriesTheSwitch(t *testing.T) {
	rec, dev, _, err := guardCase{rec: trialRecord(Health{}, false), running: buildB, boot: "boot-2",
		healthyAt: 0, failLeft: 2}.run(t)
	if err != nil || len(dev.posts) != 1 || rec.Confirmed != buildB {
		t.Errorf("err %v, posts %v, record %+v; want confirmed on the third try", err, dev.posts, rec)
	}
}

// TestGuardOldBuildBack: the old build, back after the trial's boot,
// records the failure (the new build never got to), does not reboot; in
// the boot it installed in, it leaves the trial alone.
func TestGuardOldBuildBack(t *testing.T) {
	for _, tc := range []struct {
		name    string
		started bool
		boot    string
		failed  string // "" no failure
	}{
		{"same boot as the install", false, "boot-1", ""},
		{"new build started, stopped", true, "boot-3", "did not confirm"},
		{"new build never started", false, "boot-3", "never started"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, dev, _, err := guardCase{rec: trialRecord(Health{Recording: true}, tc.started), running: buildA, boot: tc.boot, healthyAt: 0,
				health: Health{Recording: true}}.run(t)
			if dev.reboots != 0 || len(dev.posts) != 0 {
				t.Errorf("old build: %d reboots, posts %v", dev.reboots, dev.posts)
			}
			if tc.failed == "" {
				if err != nil || rec.Trial == nil || len(rec.Failed) != 0 {
					t.Errorf("err %v, record %+v; want the trial kept", err, rec)
				}
				return
			}
			if err == nil || rec.Trial != nil || len(rec.Failed) != 1 || !strings.Contains(rec.Failed[0].Reason, tc.failed) {
				t.Errorf("err %v, record %+v; want the failure %q", err, rec, tc.failed)
			}
		})
	}
}

// TestGuardNoTrial: nothing to do without a record, and a record from
// builds that do not run here (a push by hand) is dropped.
func TestGuardNoTrial(t *testing.T) {
	rec, dev, took, err := guardCase{running: buildB, healthyAt: -1}.run(t)
	if err != nil || took != 0 || len(dev.posts) != 0 || dev.reboots != 0 || rec.Trial != nil {
		t.Errorf("no record: err %v took %v posts %v reboots %d", err, took, dev.posts, dev.reboots)
	}
	rec, dev, _, err = guardCase{rec: trialRecord(Health{}, true), running: "2026-12-07T00:00:00Z", healthyAt: -1}.run(t)
	if err != nil || rec.Trial != nil || len(rec.Failed) != 0 || dev.reboots != 0 {
		t.Errorf("foreign build: err %v record %+v reboots %d", err, rec, dev.reboots)
	}
}

// TestGuardStoppedNamesTheCause: a build whose probe stops at start
// (gokrazy restarts it) records why; the failure at the first start past
// the deadline, and the old build back after a crash, name it.
func TestGuardStoppedNamesTheCause(t *testing.T) {
	store := Store{Dir: t.TempDir()}
	if err := store.Save(trialRecord(Health{Recording: true}, false)); err != nil {
		t.Fatal(err)
	}
	g := &Guard{Store: store, Running: buildB, Logf: t.Logf}
	g.Stopped(errors.New("flag provided but not defined: -bogus"))
	rec, err := store.Load()
	if err != nil || rec.Trial == nil || rec.Trial.Stopped != "flag provided but not defined: -bogus" {
		t.Fatalf("record after Stopped: %+v %v", rec.Trial, err)
	}
	// The same stop again (gokrazy restarts the probe every second) is
	// not written again.
	before, err := os.Stat(store.path())
	if err != nil {
		t.Fatal(err)
	}
	g.Stopped(errors.New("flag provided but not defined: -bogus"))
	if after, err := os.Stat(store.path()); err != nil || !os.SameFile(before, after) {
		t.Errorf("the same stop rewrote the record (%v)", err)
	}
	rec.Trial.Started = true
	for _, tc := range []struct {
		name, running string
		upAt          time.Duration
		want          string
	}{
		{"new build past its deadline", buildB, 11 * time.Minute, "restarted after the deadline; it last stopped with: flag provided but not defined: -bogus"},
		{"old build back", buildA, time.Minute, "did not confirm itself (the probe stopped before its verdict; it last stopped with: flag provided"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, took, err := guardCase{rec: rec, running: tc.running, boot: "boot-2", upAt: tc.upAt, healthyAt: -1}.run(t)
			if err == nil || took != 0 || len(got.Failed) != 1 || !strings.Contains(got.Failed[0].Reason, tc.want) {
				t.Errorf("err %v after %v, failed %+v; want at once a reason with %q", err, took, got.Failed, tc.want)
			}
		})
	}
	// Another build's stop leaves the trial alone.
	(&Guard{Store: store, Running: buildA, Logf: t.Logf}).Stopped(errors.New("other"))
	if rec, _ := store.Load(); rec.Trial == nil || rec.Trial.Stopped != "flag provided but not defined: -bogus" {
		t.Errorf("a stop of the old build changed the trial: %+v", rec.Trial)
	}
}

// TestGuardNoVerdictAfterStopped: once the probe stopped (Stopped), the
// watch in the exiting process neither fails the build (a failure
// recorded whose reboot the exit cut off would leave the build running
// untried) nor confirms it: the next start judges it instead.
func TestGuardNoVerdictAfterStopped(t *testing.T) {
	for _, healthy := range []bool{false, true} {
		store := Store{Dir: t.TempDir()}
		if err := store.Save(trialRecord(Health{Recording: true}, false)); err != nil {
			t.Fatal(err)
		}
		dev := &fakeDevice{}
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			g := &Guard{Store: store, Running: buildB, Device: dev, Reboot: dev.reboot, Logf: t.Logf,
				Uptime: func() (time.Duration, error) { return time.Minute + time.Since(start), nil },
				Health: func() Health { return Health{Recording: healthy} }}
			watch, err := g.Begin(context.Background())
			if watch == nil || err != nil {
				t.Fatalf("Begin: no watch (%v)", err)
			}
			g.Stopped(errors.New("exit status 2"))
			if err := watch(context.Background()); err == nil || !strings.Contains(err.Error(), "no verdict") {
				t.Errorf("healthy %v: watch after Stopped: %v", healthy, err)
			}
		})
		rec, _ := store.Load()
		if dev.reboots != 0 || len(dev.posts) != 0 || rec.Trial == nil || len(rec.Failed) != 0 || rec.Confirmed != "" {
			t.Errorf("healthy %v: %d reboots, posts %v, record %+v; want none and the trial kept", healthy, dev.reboots, dev.posts, rec)
		}
	}
}

package pwreboot

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/presscap/presscap/probe/internal/fleet/update"
)

// at is hh:mm on the bubble's first day (synctest's clock starts at midnight UTC).
func at(hh, mm int) time.Time {
	y, m, d := time.Now().UTC().Date()
	return time.Date(y, m, d, hh, mm, 0, 0, time.UTC)
}

// TestRebootAtQuietTime: the reboot waits for the report that told the
// provider, then for release.window, then while a window is open and for
// quiet_after_press after a press, and happens once, then.
func TestRebootAtQuietTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		busyFrom, busyTo, press := at(3, 0), at(3, 10), at(3, 5)
		told := make(chan struct{})
		var reboots []time.Time
		s := Scheduler{
			Policy: update.Policy{QuietAfterPress: 30 * time.Minute, WindowFrom: 3 * 60, WindowTo: 5 * 60, Location: time.UTC},
			State: func() update.State {
				now := time.Now()
				st := update.State{Busy: !now.Before(busyFrom) && now.Before(busyTo)}
				if !now.Before(press) {
					st.LastPress = press
				}
				return st
			},
			Told:   told,
			Reboot: func(context.Context) error { reboots = append(reboots, time.Now().UTC()); return nil },
			Logf:   t.Logf,
		}
		done := make(chan error, 1)
		go func() { done <- s.Run(context.Background()) }()
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if len(reboots) != 0 {
			t.Fatal("rebooted before the report told the provider")
		}
		close(told)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if want := at(3, 35); len(reboots) != 1 || !reboots[0].Equal(want) {
			t.Fatalf("reboots %v, want one at %v (30 min after the press at 03:05, the window closed at 03:10)", reboots, want)
		}
	})
}

// TestNoRebootUntilTold: without a report that reached the server the
// probe never reboots, whatever the hour.
func TestNoRebootUntilTold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rebooted := false
		s := Scheduler{Policy: update.Policy{WindowFrom: 0, WindowTo: 0}, State: func() update.State { return update.State{} },
			Told: make(chan struct{}), Reboot: func(context.Context) error { rebooted = true; return nil }, Logf: t.Logf}
		ctx, cancel := context.WithTimeout(context.Background(), 72*time.Hour)
		defer cancel()
		if err := s.Run(ctx); err == nil || rebooted {
			t.Fatalf("Run = %v, rebooted %v", err, rebooted)
		}
	})
}

// TestNeeded: a reboot is owed only in the boot that made the password;
// the next boot drops the mark.
func TestNeeded(t *testing.T) {
	dir := t.TempDir()
	if need, err := Needed(dir, "boot-a"); need || err != nil {
		t.Fatalf("no mark: %v %v", need, err)
	}
	if err := Mark(dir, "boot-a"); err != nil {
		t.Fatal(err)
	}
	if need, err := Needed(dir, "boot-a"); !need || err != nil {
		t.Fatalf("same boot: %v %v", need, err)
	}
	if need, err := Needed(dir, "boot-b"); need || err != nil {
		t.Fatalf("next boot: %v %v", need, err)
	}
	if _, err := os.Stat(filepath.Join(dir, MarkFile)); !os.IsNotExist(err) {
		t.Fatalf("mark kept after the reboot: %v", err)
	}
	if need, _ := Needed(dir, "boot-a"); need {
		t.Fatal("a removed mark still owes a reboot")
	}
}

// TestRebootWaitsForTrial: a password made in an update's test boot must
// not reboot before the guard confirmed the build (that would fail a good
// release); once the trial ends the reboot comes at the next recheck.
func TestRebootWaitsForTrial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		confirm := at(0, 20)
		told := make(chan struct{})
		close(told)
		var reboots []time.Time
		s := Scheduler{Policy: update.Policy{WindowFrom: 0, WindowTo: 0}, State: func() update.State { return update.State{} },
			Told:    told,
			Pending: func() bool { return time.Now().Before(confirm) },
			Reboot:  func(context.Context) error { reboots = append(reboots, time.Now().UTC()); return nil },
			Logf:    t.Logf}
		if err := s.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(reboots) != 1 || reboots[0].Before(confirm) || reboots[0].After(confirm.Add(update.BusyRecheck)) {
			t.Fatalf("reboots %v, want one within %v after the trial's end at %v", reboots, update.BusyRecheck, confirm)
		}
	})
}

// TestRebootWaitsForSyncedClock: at first boot with NTP blocked the clock
// says 1970; "03:00" of it is no quiet time, so the reboot waits for the sync.
func TestRebootWaitsForSyncedClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		synced := at(4, 10) // NTP reaches the probe inside the window
		told := make(chan struct{})
		close(told)
		var reboots []time.Time
		s := Scheduler{Policy: update.Policy{WindowFrom: 3 * 60, WindowTo: 5 * 60, Location: time.UTC},
			State:  func() update.State { return update.State{Unsynced: time.Now().Before(synced)} },
			Told:   told,
			Reboot: func(context.Context) error { reboots = append(reboots, time.Now().UTC()); return nil },
			Logf:   t.Logf}
		if err := s.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(reboots) != 1 || reboots[0].Before(synced) || reboots[0].After(synced.Add(update.UnsyncedRecheck)) {
			t.Fatalf("reboots %v, want one within %v after the sync at %v", reboots, update.UnsyncedRecheck, synced)
		}
	})
}

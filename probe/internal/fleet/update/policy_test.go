package update

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestDecide(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := func(d, h, m int) time.Time { return time.Date(2026, 12, d, h, m, 0, 0, berlin) }
	p := DefaultPolicy
	for _, tc := range []struct {
		name   string
		now    time.Time
		s      State
		urgent bool
		want   time.Time // zero: now
		reason string
	}{
		{"inside the window", at(7, 3, 0), State{}, false, time.Time{}, ""},
		{"window end is exclusive", at(7, 5, 0), State{}, false, at(8, 3, 0), "outside release.window 03:00-05:00"},
		{"before the window", at(7, 2, 59), State{}, false, at(7, 3, 0), "outside"},
		{"evening: next morning", at(7, 22, 0), State{}, false, at(8, 3, 0), "outside"},
		{"urgent ignores the window", at(7, 12, 0), State{}, true, time.Time{}, ""},
		{"busy, even urgent", at(7, 3, 30), State{Busy: true}, true, at(7, 3, 31), "a window is open"},
		{"press 10 min ago", at(7, 3, 30), State{LastPress: at(7, 3, 20)}, false, at(7, 3, 50), "within 30m0s of the press"},
		{"press 30 min ago", at(7, 3, 30), State{LastPress: at(7, 3, 0)}, false, time.Time{}, ""},
		{"quiet runs past the window: next day", at(7, 4, 45), State{LastPress: at(7, 4, 40)}, false, at(8, 3, 0), "within 30m0s"},
		{"unsynced clock: no window-bound reboot", at(7, 3, 0), State{Unsynced: true}, false, at(7, 3, 1), "the clock is not synced"},
		{"unsynced clock: urgent goes", at(7, 12, 0), State{Unsynced: true}, true, time.Time{}, ""},
		{"urgent still waits for the press", at(7, 12, 0), State{LastPress: at(7, 11, 50)}, true, at(7, 12, 20), "within"},
	} {
		d := p.Decide(tc.now, tc.s, tc.urgent)
		if tc.want.IsZero() {
			if !d.Now {
				t.Errorf("%s: %+v, want reboot now", tc.name, d)
			}
			continue
		}
		if d.Now || !d.Retry.Equal(tc.want) || !strings.Contains(d.Reason, tc.reason) {
			t.Errorf("%s: %+v, want wait until %s (%s)", tc.name, d, tc.want, tc.reason)
		}
	}
	// Across midnight, and the DST change (Berlin 2027-03-28 02:00 -> 03:00).
	night := Policy{WindowFrom: 23 * 60, WindowTo: 60}
	if d := night.Decide(at(7, 0, 30), State{}, false); !d.Now {
		t.Errorf("00:30 in 23:00-01:00: %+v", d)
	}
	if d := night.Decide(at(7, 1, 0), State{}, false); d.Now || !d.Retry.Equal(at(7, 23, 0)) {
		t.Errorf("01:00 in 23:00-01:00: %+v", d)
	}
	dst := time.Date(2027, 3, 27, 12, 0, 0, 0, berlin)
	if d := p.Decide(dst, State{}, false); d.Retry.Sub(dst) != 14*time.Hour {
		t.Errorf("over the spring DST change: retry %s, %v later; want 03:00 local, 14h", d.Retry, d.Retry.Sub(dst))
	}
	if f, to, err := ParseWindow("03:00-05:00"); err != nil || f != 180 || to != 300 {
		t.Errorf("ParseWindow: %d %d %v", f, to, err)
	}
	for _, bad := range []string{"03:00", "3:00-05:00", "03:00-25:00"} {
		if _, _, err := ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q) accepted", bad)
		}
	}
}

// A release arriving in the afternoon reboots at 03:00; a window
// open at 03:00 delays it until saved, and a press during the wait starts
// the quiet time again.
func TestWaitToReboot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now() // synctest's clock: 2000-01-01 00:00 UTC
		day := time.Date(start.Year(), start.Month(), start.Day(), 0, 0, 0, 0, start.Location())
		p := Policy{QuietAfterPress: 30 * time.Minute, WindowFrom: 3 * 60, WindowTo: 5 * 60}
		var mu sync.Mutex
		st := State{}
		set := func(s State) { mu.Lock(); st = s; mu.Unlock() }
		var logs []string
		done := make(chan time.Time, 1)
		go func() {
			if err := p.WaitToReboot(context.Background(), false, func() State { mu.Lock(); defer mu.Unlock(); return st }, func(f string, a ...any) {
				logs = append(logs, f)
			}); err != nil {
				t.Error(err)
			}
			done <- time.Now()
		}()
		time.Sleep(day.Add(3*time.Hour - time.Minute).Sub(time.Now()))
		set(State{Busy: true}) // 02:59: a press opened a window
		time.Sleep(20 * time.Minute)
		synctest.Wait()
		select {
		case at := <-done:
			t.Fatalf("rebooted at %s while a window was open", at)
		default:
		}
		press := time.Now()
		set(State{LastPress: press.Add(-5 * time.Minute)}) // saved at 03:19, pressed at 03:14
		at := <-done
		if want := press.Add(25 * time.Minute); at.Before(want) || at.After(want.Add(time.Minute)) {
			t.Errorf("rebooted at %s, want 30 min after the press at %s", at, press.Add(-5*time.Minute))
		}
		if len(logs) < 2 {
			t.Errorf("logged %d reasons, want the window and the press at least", len(logs))
		}

		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := p.WaitToReboot(ctx, false, func() State { return State{Busy: true} }, func(string, ...any) {}); err != context.Canceled {
			t.Errorf("cancelled wait: %v", err)
		}
	})
}

// Package update is the probe's side of the fleet's pulled updates
// (issue 14): when a verified release may reboot the probe (the reboot
// policy), and fetching a release from the provider's SFTP server into
// /perm (pull.go).
package update

import (
	"context"
	"fmt"
	"time"

	"github.com/presscap/presscap/internal/daytime"
)

// Policy holds release.quiet_after_press and release.window.
type Policy struct {
	// QuietAfterPress is how long after a press the probe does not reboot
	// (the customer may press again for the same fault).
	QuietAfterPress time.Duration
	// Window is when a non-urgent release may reboot, minutes of the local
	// day [WindowFrom, WindowTo), across midnight when WindowFrom >
	// WindowTo; equal means any time.
	WindowFrom, WindowTo int
	// Location is clock.time_zone's (nil: the process's local time).
	Location *time.Location
}

// DefaultPolicy is 30 min after a press, 03:00–05:00 local.
var DefaultPolicy = Policy{QuietAfterPress: 30 * time.Minute, WindowFrom: 3 * 60, WindowTo: 5 * 60}

// ParseWindow reads release.window ("03:00-05:00").
func ParseWindow(s string) (from, to int, err error) { return daytime.ParseRange(s) }

// State is what the service knows when it asks.
type State struct {
	// Busy is true while a window is open or being saved.
	Busy bool
	// LastPress is the last press (zero: none since start).
	LastPress time.Time
	// Unsynced is true while the clock has not been set by NTP: its hour
	// (1970 at first boot) says nothing about release.window.
	Unsynced bool
}

// UnsyncedRecheck is how soon an unsynced clock is asked again.
const UnsyncedRecheck = time.Minute

// BusyRecheck is how soon a busy probe is asked again: a window lasts
// minutes, and its end is not known in advance.
const BusyRecheck = time.Minute

// Decision says whether to reboot now, else why not and when to ask again.
type Decision struct {
	Now    bool
	Reason string
	// Retry is the earliest time the answer can change.
	Retry time.Time
}

// Decide applies the policy at now (its location is the probe's local
// time). Urgent lifts the window, never the press rules; a window-bound
// reboot waits for a synced clock.
func (p Policy) Decide(now time.Time, s State, urgent bool) Decision {
	if s.Busy {
		return Decision{Reason: "a window is open or being saved", Retry: now.Add(BusyRecheck)}
	}
	if s.Unsynced && !urgent && p.WindowFrom != p.WindowTo {
		return Decision{Reason: "the clock is not synced yet (release.window needs the local time)", Retry: now.Add(UnsyncedRecheck)}
	}
	t := now
	reason := ""
	if !s.LastPress.IsZero() {
		if end := s.LastPress.Add(p.QuietAfterPress); end.After(t) {
			t, reason = end, fmt.Sprintf("within %v of the press at %s", p.QuietAfterPress, s.LastPress.Format(time.RFC3339))
		}
	}
	if !urgent {
		if w := p.nextInWindow(t); !w.Equal(t) {
			if reason == "" {
				reason = fmt.Sprintf("outside release.window %02d:%02d-%02d:%02d", p.WindowFrom/60, p.WindowFrom%60, p.WindowTo/60, p.WindowTo%60)
			}
			t = w
		}
	}
	if t.Equal(now) {
		return Decision{Now: true}
	}
	return Decision{Reason: reason, Retry: t}
}

func (p Policy) inWindow(t time.Time) bool {
	if p.WindowFrom == p.WindowTo {
		return true
	}
	m := t.Hour()*60 + t.Minute()
	if p.WindowFrom < p.WindowTo {
		return m >= p.WindowFrom && m < p.WindowTo
	}
	return m >= p.WindowFrom || m < p.WindowTo
}

// nextInWindow is t if the window holds it, else the window's next start.
func (p Policy) nextInWindow(t time.Time) time.Time {
	if p.inWindow(t) {
		return t
	}
	y, mo, d := t.Date()
	start := time.Date(y, mo, d, p.WindowFrom/60, p.WindowFrom%60, 0, 0, t.Location())
	if !start.After(t) {
		start = time.Date(y, mo, d+1, p.WindowFrom/60, p.WindowFrom%60, 0, 0, t.Location())
	}
	return start
}

// WaitToReboot returns when the policy allows the reboot (nil) or ctx ends.
// state is asked afresh each time, so a press while waiting counts.
func (p Policy) WaitToReboot(ctx context.Context, urgent bool, state func() State, logf func(string, ...any)) error {
	last := ""
	for {
		now := time.Now()
		if p.Location != nil {
			now = now.In(p.Location)
		}
		d := p.Decide(now, state(), urgent)
		if d.Now {
			return nil
		}
		if d.Reason != last {
			logf("update: reboot waits: %s (until %s at the earliest)", d.Reason, d.Retry.Format(time.RFC3339))
			last = d.Reason
		}
		// A press may come while waiting: never sleep past a recheck.
		wait := min(d.Retry.Sub(now), BusyRecheck)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

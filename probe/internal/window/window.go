// Package window turns presses into windows (merging, extending,
// ignoring as trigger.repeat says) and keeps each open window's pending
// record on disk, so that a restart or a power cut between a press and its
// files loses no press.
package window

import (
	"time"
)

// Repeat modes, as in the configuration.
const (
	RepeatExtend   = "extend"
	RepeatSeparate = "separate"
	RepeatIgnore   = "ignore"
)

// Window is one saved window, "window #N" in logs and on the status page:
// the presses it covers and the interval to cut.
type Window struct {
	ID int
	// Profile is the button's meaning (trigger.profiles), "" without.
	Profile string
	Presses []PressInfo
	From    time.Time // first press − before
	To      time.Time // last press + after, at most From + max window
	// Recovered: the window was read back from its pending record after
	// the service restarted; Restarted is when that service started (the
	// ring holds no packets from the stop until then).
	Recovered bool
	Restarted time.Time
	// Ring identifies the ring that recorded the window (storage's RingID;
	// "" unknown): a recovered window is cut from that ring only.
	Ring string
	// BootID (the kernel's boot_id) and EndBoot (the window's end on
	// CLOCK_BOOTTIME) let a restart within the same boot wait for the end
	// without a synced wall clock.
	BootID  string
	EndBoot time.Duration
	// Progress is how far the window's files are written and durable
	// (nil: not begun), kept in the pending record.
	Progress *Progress
	// Recording is when the open ring began recording in this run (zero:
	// unknown): the ring lacks the time before it, whatever it holds.
	Recording time.Time
	// due is when the window's end has passed, on the clock presses are
	// received by (monotonic for real presses), so that a wall clock step
	// between press and end neither delays nor hurries the cut.
	due time.Time
}

// PressInfo is one press as the window keeps it.
type PressInfo struct {
	Time   time.Time `json:"time"`
	Synced bool      `json:"clock_synced"`
	Source string    `json:"source"` // device path, "http" or "local"
	Key    string    `json:"key,omitempty"`
	// Profile is the profile the press was for ("" without profiles).
	Profile string `json:"profile,omitempty"`
	// Received is when the service got the press (time.Now, with its
	// monotonic reading); zero means Time.
	Received time.Time `json:"-"`
}

// dueFor returns when wall time to is reached, counted from p's receipt.
func dueFor(p PressInfo, to time.Time) time.Time {
	if p.Received.IsZero() {
		return to
	}
	return p.Received.Add(to.Sub(p.Time))
}

// Due is when the window's end has passed, on the clock presses are
// received by.
func (w *Window) Due() time.Time { return w.due }

// Clone copies w (for its pending record, or a follower's own use).
func (w *Window) Clone() *Window {
	cp := *w
	cp.Presses = append([]PressInfo(nil), w.Presses...)
	return &cp
}

// First is the press that opened the window; it names the files.
func (w *Window) First() PressInfo { return w.Presses[0] }

// Synced is false if the clock was not synced at any of its presses.
func (w *Window) Synced() bool {
	for _, p := range w.Presses {
		if !p.Synced {
			return false
		}
	}
	return true
}

// FromRing says whether w may be cut from the ring identified by cur: a
// recovered window only from the ring that recorded it (after a restart
// the /perm fallback may be open while the USB disk is slow to appear).
// A window of this run is cut from whatever ring is open.
func (w *Window) FromRing(cur string) bool {
	return !w.Recovered || w.Ring == "" || w.Ring == cur
}

// Windows merges presses into windows. It is not safe for concurrent use;
// the service owns it from one goroutine.
type Windows struct {
	Before, After time.Duration
	// Spans are the profiles' before and after, by name; a press for a
	// profile not in it gets Before and After.
	Spans     map[string]Span
	MaxWindow time.Duration // bound on an extended window; 0 = none
	Repeat    string
	// Taken, if set, says an id is in use by a record this run could not
	// list: a new window skips it (up to maxSkip ids in a row).
	Taken func(id int) bool

	nextID  int
	pending []*Window
}

// Span is a profile's window around its press.
type Span struct{ Before, After time.Duration }

// span returns the before and after of profile.
func (ws *Windows) span(profile string) (before, after time.Duration) {
	if sp, ok := ws.Spans[profile]; ok {
		return sp.Before, sp.After
	}
	return ws.Before, ws.After
}

// maxSkip bounds the ids Press skips for Taken, should everything look
// taken (a directory that fails every look-up).
const maxSkip = 1000

// Decision says what a press did.
type Decision int

const (
	Opened   Decision = iota // a new window
	Extended                 // merged into an open window
	Ignored                  // inside an open window, repeat = ignore
)

func (d Decision) String() string {
	return [...]string{"opened", "extended", "ignored"}[d]
}

// Press adds a press and returns what it did and the window concerned.
// A press is inside an open window when it comes before the window's end.
func (ws *Windows) Press(p PressInfo) (Decision, *Window) {
	before, after := ws.span(p.Profile)
	if open := ws.openAt(p.Time, p.Profile); open != nil {
		switch ws.Repeat {
		case RepeatIgnore:
			return Ignored, open
		case RepeatExtend, "":
			to := p.Time.Add(after)
			if ws.MaxWindow > 0 {
				if limit := open.From.Add(ws.MaxWindow); to.After(limit) {
					to = limit
				}
			}
			if to.After(open.To) {
				open.To = to
				open.due = dueFor(p, to)
			}
			open.Presses = append(open.Presses, p)
			return Extended, open
		}
	}
	ws.nextID++
	for i := 0; ws.Taken != nil && i < maxSkip && ws.Taken(ws.nextID); i++ {
		ws.nextID++
	}
	w := &Window{ID: ws.nextID, Profile: p.Profile, Presses: []PressInfo{p}, From: p.Time.Add(-before), To: p.Time.Add(after)}
	w.due = dueFor(p, w.To)
	ws.pending = append(ws.pending, w)
	return Opened, w
}

// Restore puts a window read back after a restart among the pending ones;
// it ends at w.To on the wall clock as it reads now.
func (ws *Windows) Restore(w *Window, now time.Time) {
	w.due = now.Add(w.To.Round(0).Sub(now.Round(0)))
	ws.pending = append(ws.pending, w)
	ws.Reserve(w.ID)
}

// RestoreDue is Restore for a window whose end is known on the receiving
// clock: it is due at due.
func (ws *Windows) RestoreDue(w *Window, due time.Time) {
	w.due = due
	ws.pending = append(ws.pending, w)
	ws.Reserve(w.ID)
}

// Restart is what a start knows to judge whether a window read back from
// its pending record is still open.
type Restart struct {
	Now    time.Time // on the clock presses are received by
	Synced bool      // the wall clock is synced
	BootID string    // this boot's (the kernel's boot_id)
	// BootTime reads CLOCK_BOOTTIME (false: it cannot be read).
	BootTime func() (time.Duration, bool)
}

// Reopen puts w, read back after a restart, among the pending windows if
// it is still open, and says so and for how long. Within the boot that
// recorded it the boot clock says, synced wall clock or not (a crashed
// service comes back unsynced under clock.sync gokrazy): sameBoot, and left
// is how long it still runs. Otherwise only a synced wall clock can judge
// its end (no RTC on the Pi), and left is zero. A window not reopened has
// ended, or its end cannot be judged: it is saved now.
func (ws *Windows) Reopen(w *Window, r Restart) (open, sameBoot bool, left time.Duration) {
	if bt, ok := r.BootTime(); ok && w.BootID != "" && w.BootID == r.BootID && w.EndBoot > 0 {
		if left := w.EndBoot - bt; left > 0 {
			ws.RestoreDue(w, r.Now.Add(left))
			return true, true, left
		}
		return false, true, 0
	}
	if r.Synced && w.To.After(r.Now) {
		ws.Restore(w, r.Now)
		return true, false, 0
	}
	return false, false, 0
}

// Reserve makes new windows' ids larger than id.
func (ws *Windows) Reserve(id int) {
	if id > ws.nextID {
		ws.nextID = id
	}
}

// openAt returns the newest pending window of profile that t falls
// into: presses of different profiles never share a window.
func (ws *Windows) openAt(t time.Time, profile string) *Window {
	for i := len(ws.pending) - 1; i >= 0; i-- {
		w := ws.pending[i]
		if w.Profile == profile && !t.Before(w.Presses[0].Time) && t.Before(w.To) {
			return w
		}
	}
	return nil
}

// Due removes and returns the windows whose end has passed at now (on
// the receiving clock), oldest first.
func (ws *Windows) Due(now time.Time) []*Window {
	var due []*Window
	keep := ws.pending[:0]
	for _, w := range ws.pending {
		if !w.due.After(now) {
			due = append(due, w)
		} else {
			keep = append(keep, w)
		}
	}
	ws.pending = keep
	return due
}

// Next returns when the earliest pending window ends (on the receiving
// clock), or false.
func (ws *Windows) Next() (time.Time, bool) {
	var next time.Time
	for _, w := range ws.pending {
		if next.IsZero() || w.due.Before(next) {
			next = w.due
		}
	}
	return next, !next.IsZero()
}

// Pending returns a copy of the windows still waiting for their end.
func (ws *Windows) Pending() []Window {
	out := make([]Window, len(ws.pending))
	for i, w := range ws.pending {
		out[i] = *w
		out[i].Presses = append([]PressInfo(nil), w.Presses...)
	}
	return out
}

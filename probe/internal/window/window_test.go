package window

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func press(off time.Duration, synced bool) PressInfo {
	return PressInfo{Time: t0.Add(off), Synced: synced, Source: "test"}
}

func TestWindowsExtend(t *testing.T) {
	ws := &Windows{Before: 60 * time.Second, After: 30 * time.Second, MaxWindow: 3 * time.Minute, Repeat: RepeatExtend}
	d, w := ws.Press(press(0, true))
	if d != Opened || !w.From.Equal(t0.Add(-60*time.Second)) || !w.To.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("first press: %v %+v", d, w)
	}
	// 20 s later, inside the after period: extends to 20 + 30 s.
	d, w2 := ws.Press(press(20*time.Second, false))
	if d != Extended || w2 != w || !w.To.Equal(t0.Add(50*time.Second)) || w.Synced() || len(w.Presses) != 2 {
		t.Fatalf("second press: %v %+v", d, w2)
	}
	if due := ws.Due(t0.Add(49 * time.Second)); len(due) != 0 {
		t.Fatalf("due early: %v", due)
	}
	if next, ok := ws.Next(); !ok || !next.Equal(t0.Add(50*time.Second)) {
		t.Fatalf("Next = %v %v", next, ok)
	}
	// Repeated presses cannot grow the window past MaxWindow from its start.
	for i := 1; i <= 4; i++ { // up to 100 s: each would reach 30 s further
		ws.Press(press(time.Duration(i)*25*time.Second, true))
	}
	if !w.To.Equal(w.From.Add(3 * time.Minute)) {
		t.Fatalf("window grew past max: %v..%v", w.From, w.To)
	}
	due := ws.Due(w.To)
	if len(due) != 1 || due[0] != w {
		t.Fatalf("Due = %v", due)
	}
	if _, ok := ws.Next(); ok {
		t.Fatal("Next after all due")
	}
	// At or after the end, a press opens a new window.
	if d, w3 := ws.Press(press(5*time.Minute, true)); d != Opened || w3.ID != 2 {
		t.Fatalf("after end: %v %+v", d, w3)
	}
}

func TestWindowsSeparateAndIgnore(t *testing.T) {
	ws := &Windows{Before: 10 * time.Second, After: 10 * time.Second, Repeat: RepeatSeparate}
	ws.Press(press(0, true))
	if d, w := ws.Press(press(5*time.Second, true)); d != Opened || w.ID != 2 {
		t.Fatalf("separate: %v %+v", d, w)
	}
	if len(ws.Pending()) != 2 {
		t.Fatalf("pending = %d", len(ws.Pending()))
	}
	due := ws.Due(t0.Add(15 * time.Second))
	if len(due) != 2 || due[0].ID != 1 || due[1].ID != 2 {
		t.Fatalf("due = %+v", due)
	}

	ws = &Windows{Before: 10 * time.Second, After: 10 * time.Second, Repeat: RepeatIgnore}
	_, w := ws.Press(press(0, true))
	if d, w2 := ws.Press(press(5*time.Second, true)); d != Ignored || w2 != w || len(w.Presses) != 1 || !w.To.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("ignore: %v %+v", d, w2)
	}
}

// A press timestamped before an open window's first press (a clock step
// backwards) does not merge into it.
func TestWindowsClockBackwards(t *testing.T) {
	ws := &Windows{Before: 10 * time.Second, After: 10 * time.Second, Repeat: RepeatExtend}
	ws.Press(press(0, true))
	if d, _ := ws.Press(press(-time.Hour, false)); d != Opened {
		t.Fatalf("press before the window's first press: %v", d)
	}
}

// A wall clock step between press and window end does not move the cut:
// the end is counted on the clock the press was received by.
func TestWindowsDueOnReceivingClock(t *testing.T) {
	ws := &Windows{Before: 10 * time.Second, After: 30 * time.Second, Repeat: RepeatExtend}
	recv := t0
	// The press carries a wall time an hour ahead (the clock was stepped).
	p := PressInfo{Time: t0.Add(time.Hour), Received: recv, Synced: false}
	_, w := ws.Press(p)
	if !w.To.Equal(t0.Add(time.Hour + 30*time.Second)) {
		t.Fatalf("window end %v", w.To)
	}
	if due := ws.Due(recv.Add(29 * time.Second)); len(due) != 0 {
		t.Fatal("due before after has passed")
	}
	if next, _ := ws.Next(); !next.Equal(recv.Add(30 * time.Second)) {
		t.Fatalf("Next = %v, want receipt + after", next)
	}
	if due := ws.Due(recv.Add(30 * time.Second)); len(due) != 1 {
		t.Fatal("not due after 'after' on the receiving clock")
	}
	// Extending counts from the later press's receipt.
	_, w = ws.Press(PressInfo{Time: t0, Received: recv})
	ws.Press(PressInfo{Time: t0.Add(10 * time.Second), Received: recv.Add(10 * time.Second)})
	if next, _ := ws.Next(); !next.Equal(recv.Add(40*time.Second)) || !w.To.Equal(t0.Add(40*time.Second)) {
		t.Fatalf("extended: Next %v To %v", next, w.To)
	}
}

// TestWindowsAfterZero: with after 0 a window ends at its press, is due
// at once, and a later press is never inside it, whatever repeat says.
func TestWindowsAfterZero(t *testing.T) {
	for _, repeat := range []string{RepeatExtend, RepeatIgnore, RepeatSeparate} {
		ws := &Windows{Before: 10 * time.Second, MaxWindow: time.Minute, Repeat: repeat}
		d, w := ws.Press(press(0, true))
		if d != Opened || !w.From.Equal(t0.Add(-10*time.Second)) || !w.To.Equal(t0) {
			t.Fatalf("%s: first press: %v %v..%v", repeat, d, w.From, w.To)
		}
		if next, ok := ws.Next(); !ok || !next.Equal(t0) {
			t.Fatalf("%s: Next = %v %v, want the press", repeat, next, ok)
		}
		d, w2 := ws.Press(press(time.Millisecond, true))
		if d != Opened || w2.ID != 2 || !w.To.Equal(t0) {
			t.Fatalf("%s: a press 1 ms later: %v #%d, first window now ends %v", repeat, d, w2.ID, w.To)
		}
		if due := ws.Due(t0); len(due) != 1 || due[0] != w {
			t.Fatalf("%s: Due at the press = %v", repeat, due)
		}
	}
}

// TestWindowsSkipTakenIDs: when the records could not be listed, a new
// window skips ids whose record is there, and gives up skipping after
// maxSkip ids when every look-up says taken.
func TestWindowsSkipTakenIDs(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	ws := &Windows{After: time.Second, Taken: func(id int) bool { return id == 1 || id == 2 || id == 4 }}
	if _, w := ws.Press(PressInfo{Time: at}); w.ID != 3 {
		t.Errorf("first window id %d, want 3", w.ID)
	}
	if _, w := ws.Press(PressInfo{Time: at.Add(time.Minute)}); w.ID != 5 {
		t.Errorf("second window id %d, want 5", w.ID)
	}
	all := &Windows{After: time.Second, Taken: func(int) bool { return true }}
	if _, w := all.Press(PressInfo{Time: at}); w.ID != maxSkip+1 {
		t.Errorf("id %d when everything looks taken, want %d", w.ID, maxSkip+1)
	}
}

// TestReopen: a window read back after a restart within the boot that
// recorded it runs on for what its boot-clock end says, synced wall clock
// or not, and is saved at once if that end has passed; from another boot
// (or with no boot clock, or no boot end in its record) only a synced wall
// clock reopens it, and only before its end. A reopened window is due at
// its end and keeps its id reserved.
func TestReopen(t *testing.T) {
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	boot := func(d time.Duration, ok bool) func() (time.Duration, bool) {
		return func() (time.Duration, bool) { return d, ok }
	}
	for _, c := range []struct {
		name             string
		w                Window
		r                Restart
		open, sameBoot   bool
		left, dueFromNow time.Duration
	}{
		{"same boot, running, clock not synced", Window{ID: 4, To: now.Add(-time.Hour), BootID: "b1", EndBoot: 100 * time.Second},
			Restart{Now: now, BootID: "b1", BootTime: boot(90*time.Second, true)}, true, true, 10 * time.Second, 10 * time.Second},
		{"same boot, ended, clock synced", Window{ID: 5, To: now.Add(time.Hour), BootID: "b1", EndBoot: 100 * time.Second},
			Restart{Now: now, Synced: true, BootID: "b1", BootTime: boot(100*time.Second, true)}, false, true, 0, 0},
		{"another boot, synced, before its end", Window{ID: 6, To: now.Add(5 * time.Second), BootID: "b0", EndBoot: 100 * time.Second},
			Restart{Now: now, Synced: true, BootID: "b1", BootTime: boot(90*time.Second, true)}, true, false, 0, 5 * time.Second},
		{"another boot, not synced", Window{ID: 7, To: now.Add(5 * time.Second), BootID: "b0", EndBoot: 100 * time.Second},
			Restart{Now: now, BootID: "b1", BootTime: boot(90*time.Second, true)}, false, false, 0, 0},
		{"no boot clock, synced, ended", Window{ID: 8, To: now.Add(-time.Second), BootID: "b1", EndBoot: 100 * time.Second},
			Restart{Now: now, Synced: true, BootID: "b1", BootTime: boot(0, false)}, false, false, 0, 0},
		{"no boot end recorded, synced", Window{ID: 9, To: now.Add(time.Second), BootID: "b1"},
			Restart{Now: now, Synced: true, BootID: "b1", BootTime: boot(90*time.Second, true)}, true, false, 0, time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			ws := &Windows{}
			w := c.w
			w.Presses = []PressInfo{{Time: now.Add(-time.Minute)}}
			open, sameBoot, left := ws.Reopen(&w, c.r)
			if open != c.open || sameBoot != c.sameBoot || left != c.left {
				t.Fatalf("open %v, same boot %v, left %v; want %v, %v, %v", open, sameBoot, left, c.open, c.sameBoot, c.left)
			}
			pending := ws.Pending()
			if !open {
				if len(pending) != 0 {
					t.Errorf("not reopened, yet pending: %v", pending)
				}
				return
			}
			if len(pending) != 1 || pending[0].ID != w.ID || !w.Due().Equal(now.Add(c.dueFromNow)) {
				t.Errorf("pending %v, due %v; want window #%d due %v", pending, w.Due(), w.ID, now.Add(c.dueFromNow))
			}
			if _, nw := ws.Press(PressInfo{Time: now.Add(time.Hour)}); nw.ID <= w.ID {
				t.Errorf("a new window after reopening #%d got id %d", w.ID, nw.ID)
			}
		})
	}
}

package window

import (
	"slices"
	"testing"
	"time"
)

// TestHeldWaitsForRingAndBackoff: a recovered window is due only while its
// own ring is open, and is reported once for each other ring it waits on;
// a window of this run is due from any ring; a failed save waits 2 s, then
// 4 s, doubling up to 10 minutes, and retryAt says when the next backoff
// ends; a window handed back without a failure is due at once.
func TestHeldWaitsForRingAndBackoff(t *testing.T) {
	rec := &Window{ID: 1, Recovered: true, Ring: "ringA"}
	cur := &Window{ID: 2, Ring: "ringA"}
	h := NewHeld([]*Window{rec, cur})
	var waited []string
	waiting := func(w *Window) { waited = append(waited, w.Ring) }
	ids := func(ws []*Window) []int {
		var out []int
		for _, w := range ws {
			out = append(out, w.ID)
		}
		return out
	}
	now := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)

	due, retryAt := h.Due(now, "ringB", waiting)
	if !slices.Equal(ids(due), []int{2}) || !retryAt.IsZero() || !slices.Equal(waited, []string{"ringA"}) {
		t.Fatalf("with another ring open: due %v, retry at %v, reported %v; want [2], none, [ringA]", ids(due), retryAt, waited)
	}
	if due, _ := h.Due(now, "ringB", waiting); len(due) != 0 || len(waited) != 1 {
		t.Fatalf("again with the other ring: due %v, reported %d times; want none, once", ids(due), len(waited))
	}
	if due, _ := h.Due(now, "ringC", waiting); len(due) != 0 || len(waited) != 2 {
		t.Fatalf("with a third ring: due %v, reported %d times; want none, twice", ids(due), len(waited))
	}
	if due, _ := h.Due(now, "ringA", waiting); !slices.Equal(ids(due), []int{1}) || len(h.Windows()) != 0 {
		t.Fatalf("with its own ring: due %v, still held %v; want [1], none", ids(due), ids(h.Windows()))
	}

	for i, want := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second} {
		wait, n := h.Add(cur, true, now)
		if wait != want || n != i+1 {
			t.Fatalf("failure %d: wait %v (failures %d), want %v", i+1, wait, n, want)
		}
		if due, retryAt := h.Due(now.Add(want-time.Millisecond), "ringA", waiting); len(due) != 0 || !retryAt.Equal(now.Add(want)) {
			t.Fatalf("failure %d, before the backoff ends: due %v, retry at %v; want none, %v", i+1, ids(due), retryAt, now.Add(want))
		}
		if due, retryAt := h.Due(now.Add(want), "ringA", waiting); !slices.Equal(ids(due), []int{2}) || !retryAt.IsZero() {
			t.Fatalf("failure %d, at the backoff's end: due %v, retry at %v", i+1, ids(due), retryAt)
		}
	}
	if wait, _ := h.Add(rec, false, now); wait != 0 {
		t.Errorf("handed back without a failure: wait %v", wait)
	}
	if due, _ := h.Due(now, "ringA", waiting); !slices.Equal(ids(due), []int{1}) {
		t.Errorf("handed back without a failure: due %v, want [1] at once", ids(due))
	}
	if d := retryDelay(40); d != 10*time.Minute {
		t.Errorf("40th retry after %v, want the 10 minute cap", d)
	}
}

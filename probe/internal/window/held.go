package window

import "time"

// Held are the windows the service keeps back until they can be saved:
// those recovered after a restart whose end has passed, until their ring is
// open, and those whose save failed on the disk, each until its backoff is
// over. It is not safe for concurrent use: only the service's Run uses it.
type Held struct {
	ws        []*Window
	failures  map[int]int       // failed saves so far, by window id
	notBefore map[int]time.Time // when a failed window may be tried again
	otherRing map[int]string    // the ring a window was last reported waiting on
}

// NewHeld holds ws.
func NewHeld(ws []*Window) *Held {
	return &Held{ws: ws, failures: map[int]int{}, notBefore: map[int]time.Time{}, otherRing: map[int]string{}}
}

// Add holds w again. failed says its save failed: it is tried again no
// sooner than wait from now, the backoff for its failures so far.
func (h *Held) Add(w *Window, failed bool, now time.Time) (wait time.Duration, failures int) {
	h.ws = append(h.ws, w)
	if !failed {
		return 0, h.failures[w.ID]
	}
	h.failures[w.ID]++
	failures = h.failures[w.ID]
	wait = retryDelay(failures)
	h.notBefore[w.ID] = now.Add(wait)
	return wait, failures
}

// Due takes out and returns the windows that may be saved at now from the
// open ring cur. Of the others, waiting is called with each window found
// waiting on another ring, once for each ring it is found waiting on;
// retryAt is the earliest end of a backoff still running (zero: none).
func (h *Held) Due(now time.Time, cur string, waiting func(*Window)) (due []*Window, retryAt time.Time) {
	var later []*Window
	for _, w := range h.ws {
		if !w.FromRing(cur) {
			later = append(later, w)
			if h.otherRing[w.ID] != cur {
				h.otherRing[w.ID] = cur
				waiting(w)
			}
			continue
		}
		if t := h.notBefore[w.ID]; now.Before(t) {
			later = append(later, w)
			if retryAt.IsZero() || t.Before(retryAt) {
				retryAt = t
			}
			continue
		}
		due = append(due, w)
	}
	h.ws = later
	return due, retryAt
}

// Windows are the windows held now.
func (h *Held) Windows() []*Window { return h.ws }

// retryDelay is the wait before the n-th retry of a failed save: 2 s,
// doubling, at most 10 minutes, so a disk that keeps failing is not
// hammered and a mended one is used soon.
func retryDelay(n int) time.Duration {
	d := 2 * time.Second
	for i := 1; i < n && d < 10*time.Minute; i++ {
		d *= 2
	}
	return min(d, 10*time.Minute)
}

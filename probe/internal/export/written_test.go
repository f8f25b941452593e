package export

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/presscap/presscap/probe/internal/capture"
)

// stuckCapture has written every packet up to until and gets no further;
// catching up takes it delay.
type stuckCapture struct {
	until time.Time
	delay time.Duration
	waits int
}

func (c *stuckCapture) WrittenUntil() time.Time { return c.until }

func (c *stuckCapture) WaitWritten(ctx context.Context, t time.Time) error {
	c.waits++
	if !c.until.Before(t) {
		time.Sleep(c.delay)
		return nil
	}
	<-ctx.Done()
	return &capture.NotWrittenError{Until: c.until, Want: t, Err: ctx.Err()}
}

// TestWaitWritten: a capture that has written the window's end costs no
// lag, and says how long it took; one stuck short of it is waited for as long as allowed
// and reported as behind by the difference; a negative wait only reports;
// at shutdown nothing is reported, stuck or not.
//
// In a synctest bubble: the capture's 20 ms and the 50 ms allowed pass on
// the bubble's clock, exactly and at once.
func TestWaitWritten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		end := time.Date(2026, 12, 7, 3, 0, 10, 0, time.UTC)
		bg := context.Background()
		stopped, cancel := context.WithCancel(bg)
		cancel()

		if lag, waited := WaitWritten(bg, &stuckCapture{until: end, delay: 20 * time.Millisecond}, end, time.Second); lag != nil || waited != 20*time.Millisecond {
			t.Errorf("caught up after 20ms: lag %+v, waited %v", lag, waited)
		}
		c := &stuckCapture{until: end.Add(-1250 * time.Millisecond)}
		start := time.Now()
		lag, waited := WaitWritten(bg, c, end, 50*time.Millisecond)
		if lag == nil || !lag.WrittenUntil.Equal(c.until) || lag.Behind != "1.25s" || waited != 0 {
			t.Fatalf("stuck: lag %+v, waited %v; want written until %v, 1.25s behind", lag, waited, c.until)
		}
		if lag.Waited != "50ms" || time.Since(start) != 50*time.Millisecond {
			t.Errorf("stuck: waited %q (%v on the clock), want the whole 50ms", lag.Waited, time.Since(start))
		}
		c.waits = 0
		if lag, _ := WaitWritten(bg, c, end, -1); lag == nil || lag.Behind != "1.25s" || c.waits != 0 {
			t.Errorf("negative wait: lag %+v after %d waits, want 1.25s behind without waiting", lag, c.waits)
		}
		if lag, _ := WaitWritten(bg, &stuckCapture{until: end}, end, -1); lag != nil {
			t.Errorf("negative wait, caught up: lag %+v", lag)
		}
		for _, wait := range []time.Duration{time.Second, -1} {
			if lag, _ := WaitWritten(stopped, c, end, wait); lag != nil {
				t.Errorf("at shutdown (wait %v): lag %+v", wait, lag)
			}
		}
	})
}

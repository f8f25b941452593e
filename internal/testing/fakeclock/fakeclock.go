// Package fakeclock is the manual clock for timing tests of code on real
// I/O: time moves only when the test says so. The upload schedule against
// sshd and the service on real disks and FIFOs use it, where a
// testing/synctest bubble cannot tell waiting on time from waiting on I/O;
// pure logic is tested in a synctest bubble instead.
package fakeclock

import (
	"sync"
	"time"
)

// Clock is a clock.Time and a clock.Sync with manually set time.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	start   time.Time // now at New, boot time 0
	synced  bool
	waiters []waiter
	changed chan struct{} // closed and replaced when waiters change
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// New returns a clock at now, synced.
func New(now time.Time) *Clock {
	return &Clock{now: now, start: now, synced: true, changed: make(chan struct{})}
}

// BootTime is the time the clock has moved since New: a boot at New whose
// clock follows every Set, back as well as forward (a test of the real
// boot clock's monotony wraps it).
func (c *Clock) BootTime() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now.Sub(c.start), true
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that receives once the clock reaches now+d.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{c.now.Add(d), ch})
	c.notify()
	return ch
}

// Synced reports what SetSynced set (true at New).
func (c *Clock) Synced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.synced
}

// SetSynced changes what Synced reports.
func (c *Clock) SetSynced(v bool) {
	c.mu.Lock()
	c.synced = v
	c.mu.Unlock()
}

// Set moves the clock to t (forward or back) and fires the waiters due.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(t) {
			w.ch <- t
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
	c.notify()
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// Waiters returns how many After channels are pending.
func (c *Clock) Waiters() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// NextDeadline returns the earliest pending After deadline, if any.
func (c *Clock) NextDeadline() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var min time.Time
	for _, w := range c.waiters {
		if min.IsZero() || w.at.Before(min) {
			min = w.at
		}
	}
	return min, !min.IsZero()
}

// WaitForWaiter blocks until at least one After is pending or timeout
// (real time) passes, and reports which.
func (c *Clock) WaitForWaiter(timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		n, ch := len(c.waiters), c.changed
		c.mu.Unlock()
		if n > 0 {
			return true
		}
		select {
		case <-ch:
		case <-deadline:
			return false
		}
	}
}

func (c *Clock) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

package upload

import "time"

// Clock is the time source of the schedule, injectable for tests.
type Clock interface {
	Now() time.Time
	// After fires once d has passed on this clock.
	After(d time.Duration) <-chan time.Time
	// Synced tells whether Now can be trusted (NTP synced). Scheduled runs,
	// missed ones included, wait for it; after_capture runs do not.
	Synced() bool
}

// SystemClock is the real clock. IsSynced reports clock synchronisation
// (the service knows how); nil means always synced.
type SystemClock struct {
	IsSynced func() bool
}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Synced calls IsSynced.
func (c SystemClock) Synced() bool { return c.IsSynced == nil || c.IsSynced() }

// Package clock knows whether the wall clock can be trusted (synced by
// NTP) and reads the boot clock, which a restart within the same boot can
// compare across runs.
package clock

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Sync tells whether the wall clock can be trusted at this moment.
type Sync interface {
	Synced() bool
}

// Fixed is a Sync with a set answer ("always" and "never", and tests).
type Fixed bool

// Synced returns the fixed answer.
func (f Fixed) Synced() bool { return bool(f) }

// Adjtimex reads the kernel's NTP status: synced when STA_UNSYNC is clear
// and the clock state is not TIME_ERROR. Daemons that discipline the clock
// (chrony, systemd-timesyncd, ntpd) clear it; settimeofday sets it.
type Adjtimex struct{}

// Synced asks the kernel.
func (Adjtimex) Synced() bool {
	var tx unix.Timex // Modes 0: read only
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false
	}
	return tx.Status&unix.STA_UNSYNC == 0 && state != unix.TIME_ERROR
}

// GokrazySync follows gokrazy's ntp service, which has no sync flag: it
// steps the clock with settimeofday, first to the time it saved at the last
// clean shutdown (which is not a sync), then to each NTP answer. A clock
// step observed while the probe runs, to a time that is not the saved
// shutdown time, counts as synced; so does the kernel's own flag.
type GokrazySync struct {
	Timefile string // gokrazy ntp's saved shutdown time
	stepped  atomic.Bool
}

// Synced reports whether an NTP step was seen (or adjtimex says synced).
func (g *GokrazySync) Synced() bool {
	return g.stepped.Load() || (Adjtimex{}).Synced()
}

// Stepped records a clock step that happened at now and reports whether it
// counts as a sync.
func (g *GokrazySync) Stepped(now time.Time) bool {
	saved, err := os.ReadFile(g.Timefile)
	if err == nil && isRestoreStep(now, saved) {
		return false
	}
	g.stepped.Store(true)
	return true
}

// isRestoreStep reports whether the clock was just set to the saved
// shutdown time (within a few seconds: the step is seen a little later).
func isRestoreStep(now time.Time, saved []byte) bool {
	var t time.Time
	if err := t.UnmarshalText(bytes.TrimSpace(saved)); err != nil {
		return false
	}
	d := now.Sub(t)
	return d > -time.Second && d < 10*time.Second
}

// Watch calls g.Stepped for every step of the wall clock until ctx is done,
// and logf for each. It uses a timerfd with TFD_TIMER_CANCEL_ON_SET, which
// the kernel cancels whenever CLOCK_REALTIME is set.
func (g *GokrazySync) Watch(ctx context.Context, logf func(string, ...any)) error {
	for {
		fd, err := unix.TimerfdCreate(unix.CLOCK_REALTIME, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK)
		if err != nil {
			return err
		}
		// A timer far in the future; only its cancellation matters.
		spec := unix.ItimerSpec{Value: unix.Timespec{Sec: time.Now().Unix() + 10*365*24*3600}}
		if err := unix.TimerfdSettime(fd, unix.TFD_TIMER_ABSTIME|unix.TFD_TIMER_CANCEL_ON_SET, &spec, nil); err != nil {
			unix.Close(fd)
			return err
		}
		f := os.NewFile(uintptr(fd), "timerfd")
		stop := context.AfterFunc(ctx, func() { f.Close() })
		var buf [8]byte
		_, err = f.Read(buf[:])
		stop()
		f.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, unix.ECANCELED) {
			now := time.Now()
			if g.Stepped(now) {
				logf("clock: stepped to %s: synced", now.UTC().Format(time.RFC3339))
			} else {
				logf("clock: stepped to %s, the saved shutdown time: not synced yet", now.UTC().Format(time.RFC3339))
			}
			continue
		}
		if err != nil {
			return err
		}
	}
}

// bootIDFile holds the kernel's random id of the current boot.
const bootIDFile = "/proc/sys/kernel/random/boot_id"

// BootID returns the current boot's id, or "" if it cannot be read
// (then no record counts as from the same boot).
func BootID() string { return BootIDAt("/") }

// BootIDAt is BootID of the system whose root directory is root, which
// tests make a directory of their own.
func BootIDAt(root string) string {
	b, err := os.ReadFile(filepath.Join(root, bootIDFile))
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}

// BootTime reads CLOCK_BOOTTIME: time since boot, suspend included, never
// stepped. A service restarted within the same boot can compare it with
// a reading of the run before, which the wall clock cannot promise.
func BootTime() (time.Duration, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}

// Time is the clock a component's timing runs on: Real, or in tests one
// the test moves (internal/testing/fakeclock), so that a wait of seconds
// takes none.
type Time interface {
	Now() time.Time
	// After fires once d has passed on this clock.
	After(d time.Duration) <-chan time.Time
	// BootTime is CLOCK_BOOTTIME on this clock (see the function
	// BootTime), false if it cannot be read.
	BootTime() (time.Duration, bool)
}

// Real is the system's clock.
type Real struct{}

// Now is time.Now.
func (Real) Now() time.Time { return time.Now() }

// After is time.After.
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }

// BootTime reads the kernel's boot clock.
func (Real) BootTime() (time.Duration, bool) { return BootTime() }

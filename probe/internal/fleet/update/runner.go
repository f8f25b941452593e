package update

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presscap/presscap/internal/gokrazyhttp"
	"github.com/presscap/presscap/internal/release"
	"github.com/presscap/presscap/probe/internal/fleet"
)

// Runner reads the release channel on schedule and installs what it
// offers: verified (Puller), downloaded into /perm, written to the
// inactive root through the device's own gokrazy, armed for a test boot,
// and rebooted into when the Policy allows. Set the fields, then Run.
type Runner struct {
	// Puller's Remote is set for each connection; Running is this build.
	Puller Puller
	// Connect opens a connection to the server and calls fn over it.
	Connect func(ctx context.Context, fn func(Remote) error) error
	Channel string
	Policy  Policy
	// Service is what the reboot policy asks about the capture.
	Service func() State
	// Health is what the running build shows: recorded in the trial as
	// what the new build must show too.
	Health func() Health
	Device *gokrazyhttp.Client
	Store  Store
	BootID string
	// TestBoot says this boot runs the root gokrazy calls inactive (its
	// test boot: the kernel's command line still names the old root, so
	// gokrazy's /update/root would write over the running build).
	TestBoot func() bool
	// ConfirmWithin is release.confirm_within, handed to the new build.
	ConfirmWithin time.Duration
	// First is how long after start the first check comes; Interval
	// between checks.
	First, Interval time.Duration
	Logf            func(string, ...any)

	reached atomic.Bool
	mu      sync.Mutex
	status  fleet.Update
	lastLog string
}

// Reached says whether the server answered since start.
func (r *Runner) Reached() bool { return r.reached.Load() }

// Report is the channel's state for the health report.
func (r *Runner) Report() *fleet.Update {
	r.mu.Lock()
	u := r.status
	r.mu.Unlock()
	u.Channel = r.Channel
	if rec, err := r.Store.Load(); err == nil {
		if rec.Confirmed == r.Puller.Running {
			u.UpdatedFrom = rec.UpdatedFrom
		}
		u.Failed = rec.Failed
	}
	return &u
}

func (r *Runner) set(fn func(u *fleet.Update)) {
	r.mu.Lock()
	fn(&r.status)
	r.mu.Unlock()
}

// logOnce logs a line unless it is the one logged last: a channel read
// every few hours says the same thing each time.
func (r *Runner) logOnce(format string, args ...any) {
	r.mu.Lock()
	line := format
	if len(args) > 0 {
		line = fmt.Sprintf(format, args...)
	}
	same := line == r.lastLog
	r.lastLog = line
	r.mu.Unlock()
	if !same {
		r.Logf("%s", line)
	}
}

// Run checks until ctx ends; after an install it reboots (and returns
// when ctx ends with the reboot).
func (r *Runner) Run(ctx context.Context) error {
	wait := r.First
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		m, files := r.Check(ctx)
		if m != nil {
			if err := r.install(ctx, m, files); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r.Logf("update: %v", err)
				r.set(func(u *fleet.Update) { u.State = "error" })
			}
		}
		wait = r.Interval
	}
}

// Check reads the channel once and, for a release that verifies, is newer,
// for this instance and has not failed here before, downloads its parts.
// It returns the release and its local files, or nil.
func (r *Runner) Check(ctx context.Context) (*release.Manifest, map[string]string) {
	var m *release.Manifest
	var files map[string]string
	now := time.Now().UTC()
	err := r.Connect(ctx, func(rem Remote) error {
		r.reached.Store(true)
		r.set(func(u *fleet.Update) { u.LastCheck = now })
		p := r.Puller
		p.Remote = rem
		got, err := p.Check()
		switch {
		case errors.Is(err, fs.ErrNotExist):
			r.set(func(u *fleet.Update) { u.Offered, u.State = "", "current" })
			r.logOnce("update: channel %s offers no release (%s)", r.Channel, p.Dir)
			return nil
		case got != nil && got.Version == p.Running:
			r.set(func(u *fleet.Update) { u.Offered, u.State = got.Version, "current" })
			r.logOnce("update: build %s is the channel's release", got.Version)
			return nil
		case err != nil:
			r.refuse(got, err)
			return nil
		}
		rec, lerr := r.Store.Load()
		if lerr != nil {
			return lerr
		}
		if f, failed := rec.FailedAs(got.Version); failed {
			if !RetryDue(f, now) {
				r.refuse(got, errors.New("failed here before ("+f.Reason+"): not installed again"))
				return nil
			}
			r.Logf("update: release %s failed here %s only for want of the server: trying it once more", got.Version, f.Time.Format(time.RFC3339))
		}
		r.set(func(u *fleet.Update) { u.Offered, u.State = got.Version, "downloading" })
		r.Logf("update: release %s offered on channel %s (urgent %v, rollback safe %v); downloading", got.Version, r.Channel, got.Urgent, got.RollbackSafe)
		local, err := p.Fetch(ctx, got, Parts(got))
		if errors.Is(err, release.ErrHash) {
			// The part was deleted: the next check downloads it again.
			r.refuse(got, err)
			return nil
		}
		if err != nil {
			return err
		}
		m, files = got, local
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			r.Logf("update: channel %s: %v (next check in %v)", r.Channel, err, r.Interval)
			r.set(func(u *fleet.Update) { u.State = "error" })
		}
		return nil, nil
	}
	return m, files
}

func (r *Runner) refuse(m *release.Manifest, err error) {
	ref := &fleet.UpdateRefusal{Time: time.Now().UTC(), Error: err.Error()}
	if m != nil {
		ref.Version = m.Version
	}
	r.set(func(u *fleet.Update) { u.Refused, u.State = ref, "refused"; u.Offered = ref.Version })
	what := "the release"
	if ref.Version != "" {
		what = "release " + ref.Version
	}
	r.logOnce("update: %s on channel %s refused: %v", what, r.Channel, err)
}

// install waits for the policy, writes the release for a test boot,
// records the trial and reboots.
func (r *Runner) install(ctx context.Context, m *release.Manifest, files map[string]string) error {
	waitLog := func(format string, args ...any) {
		r.set(func(u *fleet.Update) { u.State = "waiting to reboot" })
		r.Logf(format, args...)
	}
	if err := r.Policy.WaitToReboot(ctx, m.Urgent, r.Service, waitLog); err != nil {
		return err
	}
	rec, err := r.Store.Load()
	if err != nil {
		return err
	}
	if r.TestBoot != nil && r.TestBoot() {
		if rec.Trial != nil {
			return fmt.Errorf("release %s waits: this build is still on trial", m.Version)
		}
		// Confirmed, but still in its test boot: a normal boot first,
		// then the release is installed at the check 10 s after it.
		r.set(func(u *fleet.Update) { u.State = "rebooting" })
		r.Logf("update: build %s runs its test boot; rebooting into it before installing release %s", r.Puller.Running, m.Version)
		return r.Device.Reboot(ctx)
	}
	r.set(func(u *fleet.Update) { u.State = "installing" })
	need := r.Health()
	need.Server = true
	rec.Trial = &Trial{Version: m.Version, From: r.Puller.Running, InstallBoot: r.BootID,
		Installed: time.Now().UTC(), ConfirmWithin: r.ConfirmWithin, Need: need}
	// The record goes first: once the test boot is armed, any reboot
	// (a power cut too) runs the new build, which must find it.
	if err := r.Store.Save(rec); err != nil {
		return err
	}
	start := time.Now()
	if err := Install(ctx, r.Device, m, files, r.Logf); err != nil {
		rec.Trial = nil
		if serr := r.Store.Save(rec); serr != nil {
			r.Logf("update: %v", serr)
		}
		return err
	}
	r.Logf("update: release %s installed for a test boot in %v; it must show %s within %v of its boot", m.Version, time.Since(start).Round(time.Millisecond), needList(need), r.ConfirmWithin)
	// A press may have come while writing.
	if err := r.Policy.WaitToReboot(ctx, m.Urgent, r.Service, waitLog); err != nil {
		return err
	}
	r.set(func(u *fleet.Update) { u.State = "rebooting" })
	r.Logf("update: rebooting into build %s", m.Version)
	return r.Device.Reboot(ctx)
}

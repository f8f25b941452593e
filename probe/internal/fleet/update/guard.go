package update

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Device is the local gokrazy's update API (*gokrazyhttp.Client).
type Device interface {
	Post(ctx context.Context, path string) error
}

// Guard decides, at each start of the probe, what an update in progress
// means for the running build: a build in its test boot confirms itself
// (gokrazy's /update/switch makes its root permanent) once it shows the
// health the old build had, or reboots when it cannot within the old
// build's release.confirm_within after boot, so gokrazy boots the old root
// again; the old build, back, records the failure so the release is not
// tried again. It needs no configuration of the running build: a build
// whose configuration is broken is judged like any other.
type Guard struct {
	Store Store
	// Running is this build's timestamp; BootID the kernel's boot_id.
	Running, BootID string
	// Uptime is the time since the kernel booted: the deadline holds
	// across the probe's restarts, and the clock may not be synced yet.
	Uptime func() (time.Duration, error)
	// Health is what the running build shows now.
	Health func() Health
	Device Device
	// Reboot restarts the device (gokrazy's /reboot, else the kernel's).
	Reboot func(ctx context.Context) error
	Logf   func(string, ...any)
	// Tick is how often Health is asked (default 2 s).
	Tick time.Duration

	// mu makes a verdict's record and its reboot one step that the
	// probe's exit (Stopped) waits for: a failure saved without its
	// reboot would leave the build running with no trial to judge it.
	mu    sync.Mutex
	ended bool // Stopped: this process gives no more verdicts
}

// Run handles the update state once at start and, in a test boot, watches
// the new build until it is confirmed (nil) or fails (it reboots and
// returns the failure's error). It returns at once when no update is in
// progress.
func (g *Guard) Run(ctx context.Context) error {
	watch, err := g.Begin(ctx)
	if watch == nil {
		return err
	}
	return watch(ctx)
}

// Begin is Run's part that does not wait, for the probe's first moment:
// the record read, a trial marked started, and the verdict on a build
// restarted past its deadline (a probe that exits at every start gets no
// further than this, so the reboot happens here). When a build on trial
// still has time, it returns watch, which waits for its verdict. ctx is
// the process's: gokrazy's reboot waits for the probe to stop, so the
// request must end when gokrazy tells it to.
func (g *Guard) Begin(ctx context.Context) (watch func(context.Context) error, err error) {
	st, err := g.Store.Load()
	if err != nil {
		// A state that cannot be read confirms nothing: a build on trial
		// falls back at the next reboot by itself.
		return nil, fmt.Errorf("update state: %w", err)
	}
	tr := st.Trial
	switch {
	case tr == nil:
		return nil, nil
	case tr.Version == g.Running:
		return g.trial(ctx, st)
	case tr.From == g.Running && tr.InstallBoot == g.BootID:
		return nil, nil // installed in this boot; the reboot is still to come
	case tr.From == g.Running:
		reason := "its probe never started (no record of it)"
		if tr.Started {
			reason = "it did not confirm itself (the probe stopped before its verdict" + stoppedBy(tr) + ")"
		}
		return nil, g.fail(ctx, st, reason, false, false)
	default:
		g.Logf("update: build %s runs, not %s (trial) nor %s: the trial is dropped", g.Running, tr.Version, tr.From)
		st.Trial = nil
		return nil, g.Store.Save(st)
	}
}

// Stopped records why the probe of a build on trial stopped before its
// verdict, for the failure's reason: the process that fails it at last
// (a later start, or the old build back) did not see it.
func (g *Guard) Stopped(cause error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ended = true
	st, err := g.Store.Load()
	// The same error at each restart (every second) is not written again:
	// /perm is an SD card.
	if err != nil || st.Trial == nil || st.Trial.Version != g.Running || st.Trial.Stopped == cause.Error() {
		return
	}
	st.Trial.Stopped = cause.Error()
	if err := g.Store.Save(st); err != nil {
		g.Logf("update: %v", err)
	}
}

func errNoVerdict(tr *Trial) error {
	return fmt.Errorf("update: build %s: no verdict, its probe stopped (its next start judges it)", tr.Version)
}

func stoppedBy(tr *Trial) string {
	if tr.Stopped == "" {
		return ""
	}
	return "; it last stopped with: " + tr.Stopped
}

func (g *Guard) trial(ctx context.Context, st Record) (func(context.Context) error, error) {
	tr := st.Trial
	if !tr.Started {
		tr.Started = true
		if err := g.Store.Save(st); err != nil {
			g.Logf("update: %v", err)
		}
	}
	up, err := g.Uptime()
	if err != nil {
		return nil, g.fail(ctx, st, fmt.Sprintf("uptime unknown (%v)", err), false, true)
	}
	left := tr.ConfirmWithin - up
	if left <= 0 {
		return nil, g.fail(ctx, st, fmt.Sprintf("not healthy within %v of its boot: its probe restarted after the deadline%s", tr.ConfirmWithin, stoppedBy(tr)), false, true)
	}
	g.Logf("update: build %s is on trial (updated from %s): confirms once it shows %s, within %s", tr.Version, tr.From, needList(tr.Need), left.Round(time.Second))
	deadline := time.Now().Add(left)
	return func(ctx context.Context) error { return g.watch(ctx, st, deadline) }, nil
}

// watch asks Health until the build shows what it needs (it confirms) or
// the deadline passes (it fails and reboots).
func (g *Guard) watch(ctx context.Context, st Record, deadline time.Time) error {
	tr := st.Trial
	tick := g.Tick
	if tick <= 0 {
		tick = 2 * time.Second
	}
	missing := []string{"not asked before the deadline"}
	for time.Now().Before(deadline) {
		missing = tr.Need.Missing(g.Health())
		if len(missing) == 0 {
			if done, err := g.confirm(ctx, st, deadline); done {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(tick, time.Until(deadline))):
		}
	}
	serverOnly := len(missing) == 1 && missing[0] == missingServer
	return g.fail(ctx, st, fmt.Sprintf("not healthy within %v of its boot: %s", tr.ConfirmWithin, strings.Join(missing, ", ")), serverOnly, true)
}

// confirm makes the trial's build permanent (gokrazy's /update/switch)
// and records it; done is false when the switch is to be tried again.
func (g *Guard) confirm(ctx context.Context, st Record, deadline time.Time) (done bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	tr := st.Trial
	if g.ended {
		return true, errNoVerdict(tr)
	}
	if err := g.Device.Post(ctx, "/update/switch"); err != nil {
		g.Logf("update: confirming build %s: %v (trying again)", tr.Version, err)
		return false, nil
	}
	st.Trial = nil
	st.UpdatedFrom, st.Confirmed = tr.From, tr.Version
	if err := g.Store.Save(st); err != nil {
		g.Logf("update: %v", err)
	}
	g.Logf("update: build %s confirmed (healthy %s after boot; updated from %s)", tr.Version, (tr.ConfirmWithin - time.Until(deadline)).Round(time.Second), tr.From)
	return true, nil
}

// fail records the trial's build as failed and, on it, reboots into the
// old root. serverOnly: it lacked nothing but the server (see RetryDue).
func (g *Guard) fail(ctx context.Context, st Record, reason string, serverOnly, reboot bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	tr := st.Trial
	if g.ended {
		return errNoVerdict(tr)
	}
	st.Trial = nil
	st.addFailure(Failure{Version: tr.Version, Time: time.Now().UTC(), Reason: reason, ServerOnly: serverOnly})
	err := fmt.Errorf("update: build %s failed its trial: %s", tr.Version, reason)
	if serr := g.Store.Save(st); serr != nil {
		g.Logf("update: %v", serr)
	}
	if !reboot {
		g.Logf("%v; build %s runs again and will not install it again", err, g.Running)
		return err
	}
	g.Logf("%v; rebooting into build %s", err, tr.From)
	if rerr := g.Reboot(ctx); rerr != nil {
		g.Logf("update: reboot: %v", rerr)
	}
	return err
}

func needList(h Health) string {
	var s []string
	if h.Recording {
		s = append(s, "recording")
	}
	if h.Disk {
		s = append(s, "disk mounted")
	}
	if h.Server {
		s = append(s, "server reached")
	}
	if len(s) == 0 {
		return "that its probe runs"
	}
	return strings.Join(s, ", ")
}

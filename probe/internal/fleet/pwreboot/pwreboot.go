// Package pwreboot reboots the probe once after it made its per-device
// password: gokrazy reads /perm/gokr-pw.txt only at boot, so until then
// the image's password, the same on every card, still opens the probe's
// web UI and update endpoint. The reboot waits until a health report
// told the provider the new password, and for a quiet time as the release
// policy defines it (no window open or being saved, not soon after a
// press, inside release.window).
package pwreboot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/presscap/presscap/internal/safefile"
	"github.com/presscap/presscap/probe/internal/fleet/update"
)

// MarkFile, in the state directory, holds the boot in which the password
// was made: the boot id, not a time, since the Pi's clock jumps at its
// first NTP sync.
const MarkFile = "password-reboot.json"

type mark struct {
	BootID string `json:"boot_id"`
}

// Mark records that the password was made in boot bootID.
func Mark(stateDir, bootID string) error {
	b, _ := json.Marshal(mark{BootID: bootID})
	return safefile.WriteFile(filepath.Join(stateDir, MarkFile), b, 0o644)
}

// Needed says whether a reboot is still owed: the password was made in
// this boot. A mark of an earlier boot is removed (that boot's end put
// the password in force).
func Needed(stateDir, bootID string) (bool, error) {
	p := filepath.Join(stateDir, MarkFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var m mark
	if json.Unmarshal(b, &m) == nil && bootID != "" && m.BootID == bootID {
		return true, nil
	}
	if err := os.Remove(p); err != nil {
		return false, err
	}
	return false, nil
}

// Scheduler reboots once. Set the fields, then Run.
type Scheduler struct {
	Policy update.Policy
	// State is the service's, asked afresh each time (a press while
	// waiting counts).
	State func() update.State
	// Told is closed once a report holding the password reached the
	// server: a reboot before that would lock the provider out.
	Told <-chan struct{}
	// Pending, when set, is true while an update's test boot is not yet
	// confirmed: a reboot then would fail a good build's trial.
	Pending func() bool
	// Reboot restarts the machine.
	Reboot func(context.Context) error
	Logf   func(format string, args ...any)
}

// Run waits for the report, then for a time the policy allows and no
// update trial pending, and reboots; it returns when ctx ends first or with the reboot's error.
func (s Scheduler) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.Told:
	}
	last := ""
	for {
		now := time.Now()
		if s.Policy.Location != nil {
			now = now.In(s.Policy.Location)
		}
		d := s.Policy.Decide(now, s.State(), false)
		if d.Now && s.Pending != nil && s.Pending() {
			d = update.Decision{Reason: "an update's test boot is not confirmed yet", Retry: now.Add(update.BusyRecheck)}
		}
		if d.Now {
			break
		}
		if d.Reason != last {
			s.Logf("fleet: the reboot that puts the per-device password in force waits: %s (until %s at the earliest)", d.Reason, d.Retry.Format(time.RFC3339))
			last = d.Reason
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(d.Retry.Sub(now), update.BusyRecheck)):
		}
	}
	s.Logf("fleet: rebooting to put the per-device password in force (gokrazy reads it at boot)")
	if err := s.Reboot(ctx); err != nil {
		return fmt.Errorf("reboot for the per-device password: %w", err)
	}
	return nil
}

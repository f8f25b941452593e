package update

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/presscap/presscap/internal/safefile"
	"github.com/presscap/presscap/probe/internal/fleet"
)

// RecordFile is the update's record on /perm, kept across the reboot into
// a new build and the reboot back.
const RecordFile = "update.json"

// Record is what one build tells the next (or the previous) about an
// update. Its JSON names are read by other builds: add, never rename.
type Record struct {
	// Trial is the build installed for a test boot and not yet confirmed.
	Trial *Trial `json:"trial,omitempty"`
	// Failed are builds that did not confirm: never installed again.
	Failed []Failure `json:"failed,omitempty"`
	// UpdatedFrom is the build the running one replaced, set when it
	// confirmed itself.
	UpdatedFrom string `json:"updated_from,omitempty"`
	// Confirmed is the build UpdatedFrom belongs to (a build pushed by
	// hand later must not claim it).
	Confirmed string `json:"confirmed,omitempty"`
}

// Trial is a test boot in progress.
type Trial struct {
	Version string `json:"version"`
	From    string `json:"from"`
	// InstallBoot is the kernel's boot_id when the old build installed it:
	// in that boot the trial has not begun.
	InstallBoot string    `json:"install_boot"`
	Installed   time.Time `json:"installed"`
	// Started is set by the new build's probe when it first runs.
	Started bool `json:"started"`
	// ConfirmWithin is the old build's release.confirm_within: the new
	// build needs no valid configuration of its own to be judged.
	ConfirmWithin time.Duration `json:"confirm_within_ns"`
	Need          Health        `json:"need"`
	// Stopped is the error the new build's probe last stopped with
	// before its verdict (Guard.Stopped), "" if none.
	Stopped string `json:"stopped,omitempty"`
}

// Failure is a build that did not confirm itself.
type Failure = fleet.UpdateFailure

// Health is what the running build shows; in a Trial, what the old build
// showed when it installed the new one, which the new one must show too.
type Health struct {
	// Recording: the capture writes packets into the ring on the disk.
	Recording bool `json:"recording"`
	// Disk: the capture disk is mounted.
	Disk bool `json:"disk"`
	// Server: the provider's server answered (the release channel read).
	Server bool `json:"server"`
}

const missingServer = "server not reached"

// Missing names what need has and h lacks.
func (need Health) Missing(h Health) []string {
	var out []string
	if need.Recording && !h.Recording {
		out = append(out, "capture not recording")
	}
	if need.Disk && !h.Disk {
		out = append(out, "disk not mounted")
	}
	if need.Server && !h.Server {
		out = append(out, missingServer)
	}
	return out
}

// Store reads and writes the Record in a directory on /perm.
type Store struct{ Dir string }

func (s Store) path() string { return filepath.Join(s.Dir, RecordFile) }

// Load returns the record; none yet is the zero Record.
func (s Store) Load() (Record, error) {
	var st Record
	b, err := os.ReadFile(s.path())
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return Record{}, fmt.Errorf("%s: %w", s.path(), err)
	}
	return st, nil
}

// Save writes the record atomically (a power cut leaves the old or the new).
func (s Store) Save(st Record) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := safefile.WriteFile(s.path(), append(b, '\n'), 0o600); err != nil {
		return err
	}
	// The record must outlive the reboot that follows it.
	return safefile.SyncDir(s.Dir)
}

// FailedAs returns the failure of version, if it failed.
func (st Record) FailedAs(version string) (Failure, bool) {
	i := slices.IndexFunc(st.Failed, func(f Failure) bool { return f.Version == version })
	if i < 0 {
		return Failure{}, false
	}
	return st.Failed[i], true
}

// MaxFailed bounds the failures kept: the oldest go first.
const MaxFailed = 16

// RetryFailedAfter is how long after a failure for "server not reached"
// alone the build is tried once more: the server may have been down.
const RetryFailedAfter = 24 * time.Hour

// RetryDue says whether the failed build f may be installed once more at now.
func RetryDue(f Failure, now time.Time) bool {
	return f.ServerOnly && f.Tries <= 1 && !now.Before(f.Time.Add(RetryFailedAfter))
}

// addFailure records f; a build that failed before keeps one entry, its
// tries counted (a second failure ends its retries).
func (st *Record) addFailure(f Failure) {
	if i := slices.IndexFunc(st.Failed, func(o Failure) bool { return o.Version == f.Version }); i >= 0 {
		f.Tries = max(st.Failed[i].Tries, 1) + 1
		st.Failed[i] = f
		return
	}
	f.Tries = 1
	st.Failed = append(st.Failed, f)
	if len(st.Failed) > MaxFailed {
		st.Failed = st.Failed[len(st.Failed)-MaxFailed:]
	}
}

package fleet

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/presscap/presscap/probe/internal/identity"
)

// Health levels, worst last.
const (
	OK      = "ok"
	Warning = "warning"
	Fault   = "fault"
)

// Thresholds of the assessment. A probe reports at least daily, so a day
// and a bit without one is worth a look, three days a fault.
const (
	StaleWarning = 26 * time.Hour
	StaleFault   = 3 * 24 * time.Hour
	DiskWarning  = 90 // percent used
	DiskFault    = 98
)

// Entry is one probe's line in `probe fleet`.
type Entry struct {
	ID       string    `json:"id"`
	Label    string    `json:"label,omitempty"`
	Hostname string    `json:"hostname,omitempty"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	Health   string    `json:"health"`
	Reasons  []string  `json:"reasons"`
	File     string    `json:"file"`
}

// Assess judges a report seen (written on the server) at seen, as of now.
// The server's time stamps it, not the probe's clock, which may be wrong.
func Assess(r Report, seen, now time.Time) Entry {
	e := Entry{ID: r.ID, Label: r.Label, Hostname: r.Hostname, LastSeen: seen, Health: OK, Reasons: []string{}}
	fault := func(format string, args ...any) { e.add(Fault, format, args...) }
	warn := func(format string, args ...any) { e.add(Warning, format, args...) }

	if age := now.Sub(seen); age >= StaleFault {
		fault("no report for %d days", int(age/(24*time.Hour)))
	} else if age >= StaleWarning {
		warn("no report for %d hours", int(age/time.Hour))
	}
	if !r.Disk.Present {
		fault("no capture disk")
	} else if r.Disk.SizeBytes > 0 {
		used := int(math.Round(100 * float64(r.Disk.SizeBytes-r.Disk.FreeBytes) / float64(r.Disk.SizeBytes)))
		if used >= DiskFault {
			fault("disk %d %% full", used)
		} else if used >= DiskWarning {
			warn("disk %d %% full", used)
		}
	}
	if r.Disk.Errors > 0 {
		warn("%d disk errors", r.Disk.Errors)
	}
	if len(r.Links) == 0 {
		fault("no capture link")
	}
	for _, l := range r.Links {
		if l.State != "up" {
			fault("link %s %s", l.Name, orUnknown(l.State))
		}
		if l.Drops > 0 {
			warn("link %s dropped %d packets", l.Name, l.Drops)
		}
	}
	if len(r.TriggerDevices) == 0 {
		warn("presenter not seen since boot")
	}
	if !r.ClockSynced {
		warn("clock not synced")
	}
	if r.Upload.LastError != "" {
		warn("last upload failed: %s", r.Upload.LastError)
	}
	if fc := r.FleetConfig; fc != nil && fc.State == "refused" {
		why := "?"
		if len(fc.Errors) > 0 {
			why = fc.Errors[0]
		}
		if len(fc.Errors) > 1 {
			why += fmt.Sprintf(" (and %d more)", len(fc.Errors)-1)
		}
		warn("configuration %s refused: %s", orDefault(fc.Source, "on the probe"), why)
	}
	if u := r.Update; u != nil {
		// A failure counts while the channel still offers that build:
		// the provider's next release ends the warning.
		failed := false
		for _, f := range u.Failed {
			if f.Version == u.Offered {
				warn("build %s rolled back: %s", f.Version, f.Reason)
				failed = true
			}
		}
		if u.State == "refused" && u.Refused != nil && !failed {
			warn("release %s refused: %s", orDefault(u.Refused.Version, "?"), u.Refused.Error)
		}
	}
	if t := r.Tunnel; t != nil && (t.State == "refused" || t.State == "error") {
		warn("tunnel %s: %s", t.State, t.Error)
	}
	return e
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "in unknown state"
	}
	return s
}

func (e *Entry) add(level, format string, args ...any) {
	if rank(level) > rank(e.Health) {
		e.Health = level
	}
	e.Reasons = append(e.Reasons, fmt.Sprintf(format, args...))
}

func rank(level string) int {
	switch level {
	case Warning:
		return 1
	case Fault:
		return 2
	}
	return 0
}

// ReadDir assesses every <id>.json in dir, a copy of the server's
// fleet/status (or a remote_dir holding fleet/status), sorted by id. A
// report that cannot be read is a fault of its own line; labels.json next
// to the status directory names the probes when their reports do not yet.
func ReadDir(dir string, now time.Time) ([]Entry, error) {
	dir = statusDir(dir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	labels := map[string]string{}
	if b, err := os.ReadFile(filepath.Join(dir, "..", LabelsFile)); err == nil {
		if labels, err = ParseLabels(b); err != nil {
			return nil, fmt.Errorf("fleet: %s: %w", filepath.Join(filepath.Dir(dir), LabelsFile), err)
		}
	}
	var out []Entry
	for _, de := range ents {
		name := de.Name()
		if !de.Type().IsRegular() || !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue // .part files of a report being written, and the rest
		}
		path := filepath.Join(dir, name)
		e := readOne(path, now)
		if e.Label == "" {
			e.Label = labels[e.ID]
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// statusDir is dir's fleet/status when it has one (a copy of the server's
// remote_dir), else dir itself (a copy of fleet/status).
func statusDir(dir string) string {
	if st, err := os.Stat(filepath.Join(dir, FleetStatusDir)); err == nil && st.IsDir() {
		return filepath.Join(dir, FleetStatusDir)
	}
	return dir
}

// ReadReport reads the report of probe id in dir, taken as ReadDir takes
// it. The id must be one (package identity): it names a file.
func ReadReport(dir, id string) (Report, error) {
	if err := identity.Check(id); err != nil {
		return Report{}, err
	}
	p := filepath.Join(statusDir(dir), id+".json")
	b, err := os.ReadFile(p)
	if err != nil {
		return Report{}, fmt.Errorf("no report of %s: %w", id, err)
	}
	r, err := Parse(b)
	if err != nil {
		return Report{}, fmt.Errorf("%s: %w", p, err)
	}
	return r, nil
}

func readOne(path string, now time.Time) Entry {
	id := strings.TrimSuffix(filepath.Base(path), ".json")
	bad := Entry{ID: id, Health: Fault, File: path}
	st, err := os.Stat(path)
	if err != nil {
		bad.Reasons = []string{err.Error()}
		return bad
	}
	bad.LastSeen = st.ModTime()
	b, err := os.ReadFile(path)
	if err == nil {
		var r Report
		if r, err = Parse(b); err == nil {
			if r.ID != id {
				err = fmt.Errorf("report of %s in %s.json", r.ID, id)
			} else {
				e := Assess(r, st.ModTime(), now)
				e.File = path
				return e
			}
		}
	}
	bad.Reasons = []string{"unreadable report: " + err.Error()}
	return bad
}

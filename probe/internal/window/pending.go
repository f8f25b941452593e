package window

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/presscap/presscap/internal/safefile"
	"github.com/presscap/presscap/probe/internal/filenames"
)

// PendingDirName is the directory under storage.state_dir that holds one
// record per window whose files are not written yet.
const PendingDirName = "pending"

// pendingRecord is a window as it is kept on disk between a press and its
// files, so that a restart or a power cut in between loses no press. The
// export filters are not in it: they come from the configuration.
type pendingRecord struct {
	ID        int         `json:"id"`
	Profile   string      `json:"profile,omitempty"`
	From      time.Time   `json:"from"`
	To        time.Time   `json:"to"`
	Synced    bool        `json:"clock_synced"`
	Presses   []PressInfo `json:"presses"`
	Recovered bool        `json:"recovered,omitempty"`
	Restarted time.Time   `json:"service_started,omitzero"`
	Ring      string      `json:"ring,omitempty"`
	BootID    string      `json:"boot_id,omitempty"`
	EndBoot   int64       `json:"end_boottime_ns,omitempty"`
	// Progress: the window's files are partly written (see Progress).
	Progress *Progress `json:"progress,omitempty"`
}

// MaxID bounds window ids: a record (or a stray file name) with this
// id or a larger one is not taken as the highest id so far, so that the
// next window's id is always one a record may hold, and never wraps
// around to a negative number. At one press a
// second it lasts 68 years.
const MaxID = 1<<31 - 1

// Store keeps the records in dir, one file per window.
type Store struct {
	Dir string
}

func (p Store) Path(id int) string {
	return filepath.Join(p.Dir, strconv.Itoa(id)+".json")
}

// Save writes w's record atomically (temporary file, fsync, rename) and
// syncs the directory, so the record survives a power cut once it returns.
func (p Store) Save(w Window) error {
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return fmt.Errorf("pending record: %w", err)
	}
	rec := pendingRecord{ID: w.ID, Profile: w.Profile, From: w.From.UTC(), To: w.To.UTC(), Synced: w.Synced(),
		Recovered: w.Recovered, Restarted: w.Restarted, Ring: w.Ring, BootID: w.BootID, EndBoot: int64(w.EndBoot),
		Progress: w.Progress}
	for _, pr := range w.Presses {
		pr.Time = pr.Time.UTC()
		rec.Presses = append(rec.Presses, pr)
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("pending record %d: %w", w.ID, err)
	}
	if err := safefile.WriteFile(p.Path(w.ID), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("pending record: %w", err)
	}
	return safefile.SyncDir(p.Dir)
}

// Remove deletes w's record; a missing record is no error.
func (p Store) Remove(id int) error {
	if err := os.Remove(p.Path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pending record: %w", err)
	}
	return safefile.SyncDir(p.Dir)
}

// BadRecordError says what is wrong with a pending record file.
type BadRecordError struct {
	File string
	// Offset is the byte the JSON decoder stopped at (-1 when the JSON
	// parsed but a field is wrong).
	Offset int64
	Field  string
	Err    error
}

func (e *BadRecordError) Error() string {
	where := ""
	if e.Field != "" {
		where = " field " + e.Field
	}
	if e.Offset >= 0 {
		where += fmt.Sprintf(" at byte %d", e.Offset)
	}
	return fmt.Sprintf("pending record %s:%s: %v", e.File, where, e.Err)
}

func (e *BadRecordError) Unwrap() error { return e.Err }

// ParseRecord decodes and checks one record; name is the file's base name,
// which must be the record's id.
func ParseRecord(path string, b []byte) (*Window, error) {
	bad := func(off int64, field string, err error) error {
		return &BadRecordError{File: path, Offset: off, Field: field, Err: err}
	}
	var rec pendingRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, bad(se.Offset, "", err)
		case errors.As(err, &te):
			return nil, bad(te.Offset, te.Field, err)
		default:
			return nil, bad(-1, "", err)
		}
	}
	base := strings.TrimSuffix(filepath.Base(path), ".json")
	switch {
	case rec.ID <= 0 || rec.ID > MaxID:
		return nil, bad(-1, "id", fmt.Errorf("%d is not a window id (1 to %d)", rec.ID, MaxID))
	case strconv.Itoa(rec.ID) != base:
		return nil, bad(-1, "id", fmt.Errorf("%d does not match the file name", rec.ID))
	case rec.From.IsZero():
		return nil, bad(-1, "from", errors.New("missing"))
	case rec.To.IsZero():
		return nil, bad(-1, "to", errors.New("missing"))
	case !rec.To.After(rec.From):
		return nil, bad(-1, "to", fmt.Errorf("%s is not after from %s", rec.To.Format(time.RFC3339Nano), rec.From.Format(time.RFC3339Nano)))
	case len(rec.Presses) == 0:
		return nil, bad(-1, "presses", errors.New("no press"))
	case rec.Profile != "" && filenames.CheckProfile(rec.Profile) != nil:
		// It goes into file names.
		return nil, bad(-1, "profile", filenames.CheckProfile(rec.Profile))
	}
	for i, pr := range rec.Presses {
		if pr.Time.IsZero() {
			return nil, bad(-1, fmt.Sprintf("presses[%d].time", i), errors.New("missing"))
		}
	}
	return &Window{ID: rec.ID, Profile: rec.Profile, From: rec.From, To: rec.To, Presses: rec.Presses,
		Recovered: rec.Recovered, Restarted: rec.Restarted, Ring: rec.Ring,
		BootID: rec.BootID, EndBoot: time.Duration(rec.EndBoot), Progress: rec.Progress}, nil
}

// Load reads every record, oldest id first. A record that makes no sense
// is moved aside (renamed to *.corrupt, kept for the engineer) and
// reported in bad; one that cannot be read (an I/O error) is reported and
// left in place for the next start. maxID is the highest id among all of
// them, so new windows do not reuse a name. err says the directory itself
// could not be read: nothing is known about the records then.
func (p Store) Load() (ws []*Window, bad []error, maxID int, err error) {
	ents, err := os.ReadDir(p.Dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, 0, nil
		}
		return nil, nil, 0, fmt.Errorf("pending records: %w", err)
	}
	moved := false
	for _, e := range ents {
		name := e.Name()
		// Records moved aside count too: a new window must not take the
		// name of one the engineer may still want to look at.
		if id, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSuffix(name, ".corrupt"), ".json")); err == nil && id > maxID && id < MaxID {
			maxID = id
		}
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") || e.IsDir() {
			continue
		}
		path := filepath.Join(p.Dir, name)
		b, err := os.ReadFile(path)
		if err != nil {
			bad = append(bad, fmt.Errorf("pending record %s: %w; left in place for the next start", path, err))
			continue
		}
		w, err := ParseRecord(path, b)
		if err != nil {
			if rerr := os.Rename(path, path+".corrupt"); rerr != nil {
				err = fmt.Errorf("%w (and could not move it aside: %v)", err, rerr)
			} else {
				err = fmt.Errorf("%w; moved aside to %s", err, filepath.Base(path)+".corrupt")
				moved = true
			}
			bad = append(bad, err)
			continue
		}
		ws = append(ws, w)
	}
	if moved {
		if err := safefile.SyncDir(p.Dir); err != nil {
			bad = append(bad, fmt.Errorf("pending records: %w", err))
		}
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].ID < ws[j].ID })
	return ws, bad, maxID, nil
}

// Exists says whether a record for id is there (or cannot be told apart
// from one: any error but not-exist counts as there).
func (p Store) Exists(id int) bool {
	_, err := os.Lstat(p.Path(id))
	return !errors.Is(err, os.ErrNotExist)
}

// Windows reads every record without touching any (unlike Load): for
// knowing which windows are pending while the service runs. Any file it
// cannot make sense of (a record moved aside at the start among them) is
// an error.
func (p Store) Windows() ([]*Window, error) {
	ents, err := os.ReadDir(p.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pending records: %w", err)
	}
	var ws []*Window
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue // a record being written
		}
		path := filepath.Join(p.Dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("pending record %s: %w", path, err)
		}
		w, err := ParseRecord(path, b)
		if err != nil {
			return nil, err
		}
		ws = append(ws, w)
	}
	return ws, nil
}

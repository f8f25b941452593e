package upload

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// partsDir, inside the state dir, holds one record per .part file this probe
// created on a server and has not yet renamed or removed.
//
// Why a record and not the host name prefix of the file names: a provider
// flashes one image onto many probes, and unless each one's config sets
// "hostname" they all carry the image's host name, so a prefix does not tell
// this probe's .part from another probe's upload in progress in a shared
// remote dir. The record names exactly what this probe wrote, on which
// server, and survives a power cut (it lives on /perm, not on the USB disk).
const partsDir = "upload-parts"

// partRecord says where a .part was written.
type partRecord struct {
	Server string `json:"server"` // host:port as dialled
	User   string `json:"user"`
	Path   string `json:"path"` // the .part on the server
}

// partJournal keeps the records. A nil journal, or one without a dir,
// records nothing (an empty dir would otherwise mean the working directory).
// Failing to write a record never fails an upload: the record only serves
// the clean-up, and without it a stale .part is merely left on the server.
//
// The writer of a .part holds an exclusive flock on its record until the
// upload attempt ends (see add), and the clean-up skips records it cannot
// lock (see claim). Why a lock: `probe upload -test` runs as another process
// on the same state dir, and its test file is never in the queue, so
// without the lock the service's clean-up would take the test's record for
// a stale one and delete its .part in flight. An age limit would guess; the
// lock is released by the kernel when the writer exits or dies, so a cut
// self-test's .part is removed by the very next run.
type partJournal struct {
	dir  string
	logf func(format string, args ...any)
}

func newPartJournal(stateDir string, logf func(string, ...any)) *partJournal {
	return &partJournal{dir: filepath.Join(stateDir, partsDir), logf: logf}
}

func (j *partJournal) off() bool { return j == nil || j.dir == "" }

// add records that name's .part is about to be created, and holds the
// record locked until release is called (once the attempt is over, whether
// or not done was called). The record is written to a temporary file,
// locked, and only then renamed to name, so nobody ever sees it torn or
// unlocked. A temporary left by a power cut is ignored by records.
func (j *partJournal) add(name string, rec partRecord) (release func()) {
	release = func() {}
	if j.off() {
		return release
	}
	b, _ := json.Marshal(rec)
	f, err := j.write(name, b)
	if err != nil {
		j.logf("upload: cannot record %s (a cut upload's .part would stay on the server): %v", rec.Path, err)
		return release
	}
	return func() { f.Close() }
}

func (j *partJournal) write(name string, b []byte) (*os.File, error) {
	if err := os.MkdirAll(j.dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(j.dir, ".tmp-")
	if err != nil {
		return nil, err
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
	if err != nil {
		err = fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(j.dir, name))
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}

// claim locks name's record for the clean-up. ok is false when the record
// is held by an upload in flight (in this process or another) or is gone;
// release must be called when ok.
func (j *partJournal) claim(name string) (release func(), ok bool, err error) {
	f, err := os.Open(filepath.Join(j.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		f.Close()
		return nil, false, nil
	}
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, true, nil
}

// done forgets name's record: its .part was renamed or removed.
func (j *partJournal) done(name string) {
	if j.off() {
		return
	}
	if err := os.Remove(filepath.Join(j.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		j.logf("upload: %v", err)
	}
}

// records returns the recorded queue names, sorted, with their records; a
// record that cannot be read is dropped (and logged).
func (j *partJournal) records() ([]string, map[string]partRecord, error) {
	if j.off() {
		return nil, nil, nil
	}
	entries, err := os.ReadDir(j.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", j.dir, err)
	}
	var names []string
	recs := map[string]partRecord{}
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".tmp-") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(j.dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // done meanwhile
		}
		var rec partRecord
		if err == nil {
			err = json.Unmarshal(b, &rec)
		}
		if err == nil && (rec.Path == "" || rec.Server == "") {
			err = errors.New("no server or path")
		}
		if err != nil {
			j.logf("upload: dropping unreadable record %s: %v", filepath.Join(j.dir, e.Name()), err)
			j.done(e.Name())
			continue
		}
		names = append(names, e.Name())
		recs[e.Name()] = rec
	}
	sort.Strings(names)
	return names, recs, nil
}

package upload

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/presscap/presscap/internal/safefile"
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
// locked, synced, and only then renamed to name and the directory synced,
// so nobody ever sees it torn or unlocked and a power cut leaves either no
// record or the whole one. A temporary left by a power cut is removed by
// records.
func (j *partJournal) add(name string, rec partRecord) (release func()) {
	release = func() {}
	if j.off() {
		return release
	}
	b, _ := json.Marshal(rec)
	f, err := j.write(name, b)
	if err != nil {
		j.logf("upload: cannot record %s (a cut upload's .part would stay on the server): %v", rec.Path, err)
	}
	if f == nil {
		return release
	}
	return func() { f.Close() }
}

// write creates name's record holding b, locked by the returned file. A
// non-nil file with an error means the record is in place but the rename
// may not survive a power cut.
func (j *partJournal) write(name string, b []byte) (*os.File, error) {
	if err := j.mkdir(); err != nil {
		return nil, err
	}
	// records removes a temporary it can lock, and it may do so between
	// CreateTemp and our flock: the rename then fails with ENOENT, and a
	// fresh temporary does it again.
	for try := 0; ; try++ {
		f, err := j.writeTemp(b)
		if err != nil {
			return nil, err
		}
		err = os.Rename(f.Name(), filepath.Join(j.dir, name))
		if errors.Is(err, fs.ErrNotExist) && try < 10 {
			f.Close()
			continue
		}
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
		return f, safefile.SyncDir(j.dir)
	}
}

// writeTemp writes b to a new temporary in the journal, locked and synced.
func (j *partJournal) writeTemp(b []byte) (*os.File, error) {
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
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}

// mkdir creates the journal dir, durably: a record in a dir whose own entry
// is lost with a power cut would be lost with it.
func (j *partJournal) mkdir() error {
	if _, err := os.Stat(j.dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(j.dir, 0o700); err != nil {
		return err
	}
	return safefile.SyncDir(filepath.Dir(j.dir))
}

// claimedRecord is a record locked by the clean-up, read from the locked
// file itself.
type claimedRecord struct {
	rec  partRecord
	f    *os.File
	path string
}

// release unlocks the record.
func (c *claimedRecord) release() { c.f.Close() }

// done forgets the claimed record, unless its name now holds another one
// (a new upload of the same name, recorded since the claim).
func (c *claimedRecord) done() error {
	if same, err := linked(c.f, c.path); err != nil || !same {
		return err
	}
	if err := os.Remove(c.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// claim locks name's record for the clean-up and reads it from the locked
// file. It returns nil (and no error) when the record is held by an upload
// in flight (in this process or another), is gone, or was replaced by a new
// record between the open and the lock: the clean-up must act only on what
// it holds, and the next run sees the new record. A locked record that
// cannot be read is dropped (and logged). The caller releases a non-nil
// claim.
func (j *partJournal) claim(name string) (*claimedRecord, error) {
	p := filepath.Join(j.dir, name)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ok, err := lockLinked(f, p)
	if err != nil || !ok {
		f.Close()
		return nil, err
	}
	c := &claimedRecord{f: f, path: p}
	c.rec, err = readRecord(f)
	if err != nil {
		j.logf("upload: dropping unreadable record %s: %v", p, err)
		if err := c.done(); err != nil {
			j.logf("upload: %v", err)
		}
		c.release()
		return nil, nil
	}
	return c, nil
}

// lockLinked takes f's flock without waiting and reports whether f is still
// the file at p. ok is false, with f unlocked or not, when another holder
// has the lock or when f was unlinked (and maybe p created anew) before the
// lock was taken: a lock on a dead file guards nothing.
func lockLinked(f *os.File, p string) (ok bool, err error) {
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lock %s: %w", p, err)
	}
	return linked(f, p)
}

// linked reports whether p names the open file f (same device and inode).
func linked(f *os.File, p string) (bool, error) {
	var fst, pst unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &fst); err != nil {
		return false, fmt.Errorf("stat %s: %w", p, err)
	}
	err := unix.Stat(p, &pst)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", p, err)
	}
	return fst.Dev == pst.Dev && fst.Ino == pst.Ino, nil
}

// readRecord reads and checks a record from f's start.
func readRecord(f *os.File) (partRecord, error) {
	var rec partRecord
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
	if err == nil {
		err = parseRecord(b, &rec)
	}
	return rec, err
}

func parseRecord(b []byte, rec *partRecord) error {
	if err := json.Unmarshal(b, rec); err != nil {
		return err
	}
	if rec.Path == "" || rec.Server == "" {
		return errors.New("no server or path")
	}
	return nil
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
		if !e.Type().IsRegular() {
			continue
		}
		if strings.HasPrefix(e.Name(), ".tmp-") {
			j.removeTemp(e.Name())
			continue
		}
		b, err := os.ReadFile(filepath.Join(j.dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // done meanwhile
		}
		var rec partRecord
		if err == nil {
			err = parseRecord(b, &rec)
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

// removeTemp removes a temporary left by a write cut by a power cut or a
// crash. A temporary being written is locked by its writer and kept.
func (j *partJournal) removeTemp(name string) {
	p := filepath.Join(j.dir, name)
	f, err := os.Open(p)
	if err != nil {
		return // renamed or removed meanwhile
	}
	defer f.Close()
	ok, err := lockLinked(f, p)
	if err == nil && ok {
		err = os.Remove(p)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		j.logf("upload: cannot remove a cut record write: %v", err)
	}
}

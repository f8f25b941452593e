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

// partJournal keeps the records. A zero journal (no dir) records nothing.
// Failing to write a record never fails an upload: the record only serves
// the clean-up, and without it a stale .part is merely left on the server.
type partJournal struct {
	dir  string
	logf func(format string, args ...any)
}

func newPartJournal(stateDir string, logf func(string, ...any)) *partJournal {
	return &partJournal{dir: filepath.Join(stateDir, partsDir), logf: logf}
}

// add records that name's .part is about to be created.
func (j *partJournal) add(name string, rec partRecord) {
	if j == nil {
		return
	}
	b, _ := json.Marshal(rec)
	if err := os.MkdirAll(j.dir, 0o700); err != nil {
		j.logf("upload: cannot record %s (a cut upload's .part would stay on the server): %v", rec.Path, err)
		return
	}
	// Written in place (no temporary, no sync): a torn record reads as
	// unusable and is dropped, which only leaves a .part on the server.
	if err := os.WriteFile(filepath.Join(j.dir, name), b, 0o600); err != nil {
		j.logf("upload: cannot record %s (a cut upload's .part would stay on the server): %v", rec.Path, err)
	}
}

// done forgets name's record: its .part was renamed or removed.
func (j *partJournal) done(name string) {
	if j == nil {
		return
	}
	if err := os.Remove(filepath.Join(j.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		j.logf("upload: %v", err)
	}
}

// records returns the recorded queue names, sorted, with their records; a
// record that cannot be read is dropped (and logged).
func (j *partJournal) records() ([]string, map[string]partRecord, error) {
	if j == nil {
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

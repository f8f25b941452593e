package storage

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/loopdisk"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/ringfs"
	"golang.org/x/sys/unix"
)

// TestUnusableRingReplaced: a ring of ours that can never be opened again
// (format 1 from an earlier build; encrypted, with its key gone from the
// state directory or not its key) is replaced by a new one, once, with
// the reason logged and on the state, and the probe records; the
// customer's file next to it stays. What is not ours (another ring.json,
// a ring directory holding a file of theirs), a key file that cannot be
// read, and a state directory where no new key can be written are
// failures that leave the disk as it was.
func TestUnusableRingReplaced(t *testing.T) {
	for _, c := range []struct {
		name string
		// lay writes the ring in dir on the mounted disk; keys is the
		// probe's state directory.
		lay func(t *testing.T, dir, keys string)
		// want is the replacement's reason, or (fail) in the error.
		want string
		fail bool
		// clear: ring.encrypt is off.
		clear bool
	}{
		{name: "format 1", lay: layFormat1, want: `old format; its packets are lost): ring `},
		{name: "key missing", lay: func(t *testing.T, dir, keys string) {
			r := sealedRing(t, dir, keys)
			mustDo(t, os.Remove(ringfs.KeyPath(keys, r)))
		}, want: "key missing"},
		{name: "key mismatch", lay: func(t *testing.T, dir, keys string) {
			r := sealedRing(t, dir, keys)
			key := make([]byte, 32)
			rand.Read(key)
			b, _ := json.Marshal(map[string]any{"ring_id": fmt.Sprintf("%016x", r), "key": key})
			mustDo(t, os.WriteFile(ringfs.KeyPath(keys, r), b, 0o600))
		}, want: "key mismatch"},
		{name: "not our format", lay: func(t *testing.T, dir, _ string) {
			writeAt(t, filepath.Join(dir, "ring.json"), `{"format":"someone-elses/1"}`)
			writeAt(t, filepath.Join(dir, "seg-000000"), "theirs")
		}, want: `format "someone-elses/1"`, fail: true},
		{name: "format 1 with a file of theirs", lay: func(t *testing.T, dir, keys string) {
			layFormat1(t, dir, keys)
			writeAt(t, filepath.Join(dir, "notes.txt"), "theirs")
		}, want: `holds "notes.txt", which is not part of a ring: nothing removed`, fail: true},
		{name: "key file unreadable", lay: func(t *testing.T, dir, keys string) {
			r := sealedRing(t, dir, keys)
			// As root no mode stops a read: a directory in the
			// key file's place fails it every time.
			mustDo(t, os.Remove(ringfs.KeyPath(keys, r)))
			mustDo(t, os.Mkdir(ringfs.KeyPath(keys, r), 0o700))
		}, want: "read its key", fail: true},
		{name: "key missing, state dir read-only", lay: func(t *testing.T, dir, keys string) {
			r := sealedRing(t, dir, keys)
			mustDo(t, os.Remove(ringfs.KeyPath(keys, r)))
			mustDo(t, unix.Mount(keys, keys, "", unix.MS_BIND, ""))
			t.Cleanup(func() { unix.Unmount(keys, unix.MNT_DETACH) })
			mustDo(t, unix.Mount("", keys, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""))
		}, want: "not replaced: key directory", fail: true},
		{name: "clear ring under ring.encrypt", lay: func(t *testing.T, dir, _ string) {
			r, err := ringfs.Create(dir, ringfs.Options{Size: ringfs.MinSize})
			mustDo(t, err)
			mustDo(t, r.Close())
		}, want: "not encrypted"},
		{name: "encryption removed from ring.json", lay: func(t *testing.T, dir, keys string) {
			sealedRing(t, dir, keys)
			p := filepath.Join(dir, "ring.json")
			var m map[string]any
			b, err := os.ReadFile(p)
			mustDo(t, err)
			mustDo(t, json.Unmarshal(b, &m))
			m["encrypted"], m["key_id"] = false, ""
			b, _ = json.Marshal(m)
			mustDo(t, os.WriteFile(p, b, 0o644))
		}, want: "not encrypted"},
		{name: "key missing, state dir read-only, ring.encrypt off", lay: func(t *testing.T, dir, keys string) {
			// /perm not mounted: its empty mount point on the
			// read-only root holds no key, which is out of reach,
			// not gone.
			r := sealedRing(t, dir, keys)
			mustDo(t, os.Remove(ringfs.KeyPath(keys, r)))
			mustDo(t, unix.Mount(keys, keys, "", unix.MS_BIND, ""))
			t.Cleanup(func() { unix.Unmount(keys, unix.MNT_DETACH) })
			mustDo(t, unix.Mount("", keys, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""))
		}, want: "not replaced: key directory", fail: true, clear: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := loopdisk.New(t, 160, false)
			mnt, keys := t.TempDir(), t.TempDir()
			mountDisk(t, d, "ext4", mnt)
			dir := filepath.Join(mnt, "ring")
			writeAt(t, filepath.Join(mnt, "photo.jpg"), "jpeg")
			c.lay(t, dir, keys)
			before := snapshotDir(t, dir)
			mustDo(t, unix.Unmount(mnt, 0))

			cfg := storageConfig(d, t)
			cfg.Encrypt, cfg.KeyDir = !c.clear, keys
			cfg.Retry = time.Hour // one look
			log := testtool.Log{T: t}
			s := New(cfg, log.Logf)
			runStorage(t, s)
			if c.fail {
				st := waitState(t, s, DiskFailed)
				if !strings.Contains(st.Error, c.want) {
					t.Errorf("failed with %q, want it to say %q", st.Error, c.want)
				}
				if strings.Contains(log.String(), "storage: replaced") {
					t.Errorf("replaced: %s", log.String())
				}
				mountDisk(t, d, "ext4", mnt)
				defer unix.Unmount(mnt, 0)
				if after := snapshotDir(t, dir); after != before {
					t.Errorf("the ring directory changed:\nbefore %s\nafter  %s", before, after)
				}
				return
			}
			st := waitState(t, s, DiskRecording)
			if ours := filepath.Join(cfg.MountPoint, "ring"); !strings.Contains(st.Replaced, c.want) || !strings.Contains(st.Replaced, ours) {
				t.Errorf("state's replaced %q, want it to name %s and say %q", st.Replaced, ours, c.want)
			}
			if !strings.Contains(log.String(), "storage: "+st.Replaced) {
				t.Errorf("the replacement is not logged: %s", log.String())
			}
			ring, _, err := s.Ring()
			mustDo(t, err)
			if !ring.Encrypted() {
				t.Error("the new ring is not encrypted")
			}
			at := time.Now().UnixNano()
			mustDo(t, s.Append(ringfs.Record{Time: at, OrigLen: 60, Data: make([]byte, 60)}))
			mustDo(t, ring.Flush())
			n := 0
			_, err = ring.Read(context.Background(), at, at+1, func(ringfs.Record) error { n++; return nil })
			if mustDo(t, err); n != 1 {
				t.Errorf("read %d packets from the new ring, want 1", n)
			}
			if b, err := os.ReadFile(filepath.Join(cfg.MountPoint, "photo.jpg")); string(b) != "jpeg" {
				t.Errorf("the customer's photo.jpg: %q, %v", b, err)
			}
		})
	}
}

// layFormat1 writes a ring as a build of format 1 left it: ring.json
// "presscap-ring/1" (the same fields as a clear ring of format 2) and
// segments whose header magic is "PRSEG001".
func layFormat1(t *testing.T, dir, _ string) {
	t.Helper()
	r, err := ringfs.Create(dir, ringfs.Options{Size: ringfs.MinSize})
	mustDo(t, err)
	mustDo(t, r.Close())
	p := filepath.Join(dir, "ring.json")
	b, err := os.ReadFile(p)
	mustDo(t, err)
	b = []byte(strings.Replace(string(b), `"presscap-ring/2"`, `"presscap-ring/1"`, 1))
	mustDo(t, os.WriteFile(p, b, 0o644))
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*"))
	for _, s := range segs {
		f, err := os.OpenFile(s, os.O_WRONLY, 0)
		mustDo(t, err)
		_, err = f.WriteAt([]byte("PRSEG001"), 0)
		mustDo(t, err)
		mustDo(t, f.Close())
	}
}

// sealedRing creates an encrypted ring in dir with its key in keys and
// returns its id.
func sealedRing(t *testing.T, dir, keys string) uint64 {
	t.Helper()
	r, err := ringfs.Create(dir, ringfs.Options{Size: ringfs.MinSize, Encrypt: true, KeyDir: keys})
	mustDo(t, err)
	id := r.ID()
	mustDo(t, r.Close())
	return id
}

// snapshotDir lists dir's entries with their size and ring.json's content.
func snapshotDir(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	mustDo(t, err)
	var out []string
	for _, e := range ents {
		fi, err := e.Info()
		mustDo(t, err)
		out = append(out, fmt.Sprintf("%s %v %d", e.Name(), fi.Mode(), fi.Size()))
	}
	b, _ := os.ReadFile(filepath.Join(dir, "ring.json"))
	return strings.Join(out, ", ") + " | " + string(b)
}

package ringfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestOldFormat: only a presscap ring.json of an earlier version is
// ErrOldFormat (and still ErrNotRing); another program's format, a later
// version or a spelling Create never wrote is ErrNotRing alone.
func TestOldFormat(t *testing.T) {
	for format, old := range map[string]bool{
		"presscap-ring/1": true, "presscap-ring/3": false, "presscap-ring/01": false,
		"presscap-ring/0": false, "presscap-ring/-1": false, "other/1": false, "": false,
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, metaName), []byte(`{"format":"`+format+`"}`), 0o644)
		_, err := Open(dir, Options{})
		if !errors.Is(err, ErrNotRing) || errors.Is(err, ErrOldFormat) != old {
			t.Errorf("format %q: %v; want ErrNotRing, ErrOldFormat %v", format, err, old)
		}
	}
}

// TestRemove: Remove takes a ring's own files and leaves its directory;
// with anything else in the directory (a file of someone else's, a
// segment that is a directory) it removes nothing.
func TestRemove(t *testing.T) {
	mk := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "ring")
		r, err := Create(dir, testOpts())
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		return dir
	}
	dir := mk(t)
	os.WriteFile(filepath.Join(dir, "seg-999999"), nil, 0o644) // a cut creation's
	if err := Remove(dir); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("after Remove: %v, %v; want an empty directory", ents, err)
	}
	for name, lay := range map[string]func(dir string){
		"notes.txt":  func(dir string) { os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644) },
		"seg-000099": func(dir string) { os.Mkdir(filepath.Join(dir, "seg-000099"), 0o755) },
	} {
		dir := mk(t)
		lay(dir)
		before, _ := os.ReadDir(dir)
		if err := Remove(dir); !errors.Is(err, ErrOccupied) {
			t.Errorf("%s in the ring: %v, want ErrOccupied", name, err)
		}
		if after, _ := os.ReadDir(dir); len(after) != len(before) {
			t.Errorf("%s in the ring: %d entries left of %d", name, len(after), len(before))
		}
	}
}

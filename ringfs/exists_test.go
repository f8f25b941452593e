package ringfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestExists: only a ring.json makes a ring, whatever its content; a
// missing directory or a file in the directory's place holds none.
func TestExists(t *testing.T) {
	root := t.TempDir()
	ring := filepath.Join(root, "ring")
	r, err := Create(ring, Options{Size: MinSize, Buffered: true, FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	broken := filepath.Join(root, "broken")
	os.Mkdir(broken, 0o755)
	os.WriteFile(filepath.Join(broken, metaName), []byte("{"), 0o644)
	empty := filepath.Join(root, "empty")
	os.Mkdir(empty, 0o755)
	file := filepath.Join(root, "file")
	os.WriteFile(file, nil, 0o644)
	for dir, want := range map[string]bool{ring: true, broken: true, empty: false, file: false, filepath.Join(root, "missing"): false} {
		if got, err := Exists(dir); got != want || err != nil {
			t.Errorf("Exists(%s) = %v, %v; want %v", filepath.Base(dir), got, err, want)
		}
	}
}

// TestOpenOrCreate: no ring and no size is ErrNoRing (and ErrNotRing, as
// Open says); a size creates the ring, the next call opens it; a ring that
// does not open is an error and stays as it is.
func TestOpenOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ring")
	o := Options{Buffered: true, FlushInterval: -1}
	if _, _, err := OpenOrCreate(dir, o); !errors.Is(err, ErrNoRing) || !errors.Is(err, ErrNotRing) {
		t.Fatalf("no ring, no size: %v, want ErrNoRing", err)
	}
	if _, err := Open(t.TempDir(), o); !errors.Is(err, ErrNoRing) {
		t.Errorf("Open of an empty directory: %v, want ErrNoRing", err)
	}
	o.Size = MinSize
	r, created, err := OpenOrCreate(dir, o)
	if err != nil || !created {
		t.Fatalf("with a size: created %v, %v", created, err)
	}
	id := r.meta.RingID
	r.Close()
	o.Size = 2 * MinSize
	r, created, err = OpenOrCreate(dir, o)
	if err != nil || created || r.meta.RingID != id || r.meta.Size != MinSize {
		t.Fatalf("second call: created %v, %v; want the first ring opened", created, err)
	}
	r.Close()

	meta := filepath.Join(dir, metaName)
	os.WriteFile(meta, []byte(`{"format":"other"}`), 0o644)
	if _, _, err := OpenOrCreate(dir, o); !errors.Is(err, ErrNotRing) || errors.Is(err, ErrNoRing) {
		t.Errorf("a ring.json of another format: %v, want ErrNotRing but not ErrNoRing", err)
	}
	if b, _ := os.ReadFile(meta); string(b) != `{"format":"other"}` {
		t.Errorf("the ring.json that did not open was replaced: %s", b)
	}
}

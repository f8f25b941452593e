package safefile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestWriteFileReplacesAndLeavesNoTemporary(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	if err := os.WriteFile(filepath.Join(dir, ".tmp-state.json"), []byte("left by a power cut"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"first", "second"} {
		if err := WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != s {
			t.Fatalf("read back %q, %v; want %q", got, err, s)
		}
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", s, st.Mode(), err)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "state.json" {
		t.Errorf("directory holds %v, want only state.json", ents)
	}
}

func TestWriteFileErrorNamesThePath(t *testing.T) {
	p := filepath.Join(t.TempDir(), "missing", "state.json")
	err := WriteFile(p, []byte("x"), 0o644)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("error %v does not name %s", err, p)
	}
}

func TestSyncDirRefusesWhatIsNotADirectory(t *testing.T) {
	dir := t.TempDir()
	if err := SyncDir(dir); err != nil {
		t.Fatalf("SyncDir(%s): %v", dir, err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, file, filepath.Join(dir, "missing")} {
		err := within(t, func() error { return SyncDir(p) })
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("SyncDir(%s) = %v, want an error naming it", p, err)
		}
	}
}

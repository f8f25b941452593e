package ringfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCreateLeavesOthersFilesAlone: a ring directory that already holds
// someone else's files is refused and keeps them, even when a creation
// attempt would fail (a directory in a segment's place); nothing is
// written through a symlink.
func TestCreateLeavesOthersFilesAlone(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "ring")
	photo := filepath.Join(dir, "holiday", "photo.jpg")
	if err := os.MkdirAll(filepath.Dir(photo), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(photo, []byte("jpeg"), 0o644)
	os.Mkdir(filepath.Join(dir, "seg-000003"), 0o755)
	if _, err := Create(dir, Options{Size: MinSize, Buffered: true}); err == nil || !strings.Contains(err.Error(), "not part of a ring") {
		t.Errorf("Create in a directory with other files: %v, want a refusal naming them", err)
	}
	if b, err := os.ReadFile(photo); err != nil || string(b) != "jpeg" {
		t.Fatalf("the photo in the ring directory: %q %v", b, err)
	}

	// A symlink as the ring directory, or as a segment's name.
	elsewhere := t.TempDir()
	link := filepath.Join(root, "linked")
	os.Symlink(elsewhere, link)
	if _, err := Create(link, Options{Size: MinSize, Buffered: true}); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("Create in a symlink: %v", err)
	}
	planted := filepath.Join(root, "planted")
	os.Mkdir(planted, 0o755)
	victim := filepath.Join(elsewhere, "gokr-pw.txt")
	os.Symlink(victim, filepath.Join(planted, "seg-000000"))
	if _, err := Create(planted, Options{Size: MinSize, Buffered: true}); err == nil {
		t.Error("Create with a symlink planted as a segment succeeded")
	}
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
		t.Errorf("written through a symlink: %v", ents)
	}
}

// TestCreateLeftoversOfACutCreation: a creation cut by a power cut leaves
// segment files and ring.json's temporary; the next Create replaces them.
func TestCreateLeftoversOfACutCreation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ring")
	os.Mkdir(dir, 0o755)
	for _, n := range []string{"seg-000000", "seg-000001", ".tmp-ring.json"} {
		os.WriteFile(filepath.Join(dir, n), []byte("cut"), 0o644)
	}
	r, err := Create(dir, Options{Size: MinSize, Buffered: true})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := Open(dir, Options{ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
}

// TestCreateFailureRemovesOnlyItsOwn: a creation that runs out of space
// removes the segments it made, and the directory if it made it, and
// nothing else.
func TestCreateFailureRemovesOnlyItsOwn(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs (root)")
	}
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=80m"); err != nil {
		t.Fatalf("mount a small tmpfs (the test needs root): %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	os.WriteFile(filepath.Join(mnt, "theirs.txt"), []byte("x"), 0o644)
	for _, dir := range []string{filepath.Join(mnt, "new"), filepath.Join(mnt, "existing")} {
		if strings.HasSuffix(dir, "existing") {
			os.Mkdir(dir, 0o755)
		}
		_, err := Create(dir, Options{Size: 2 * MinSize, Buffered: true})
		if !errors.Is(err, unix.ENOSPC) {
			t.Fatalf("Create of 128 MiB on 80 MiB: %v, want ENOSPC", err)
		}
	}
	var left []string
	filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
		if p != mnt {
			rel, _ := filepath.Rel(mnt, p)
			left = append(left, rel)
		}
		return nil
	})
	sort.Strings(left)
	if strings.Join(left, " ") != "existing theirs.txt" {
		t.Errorf("left after two failed creations: %v, want the existing directory and theirs.txt", left)
	}
}

// TestCreateUndoAfterOpenFails: a creation that fails after ring.json was
// written (here: the process runs out of descriptors while opening the
// segments for writing) leaves no ring.json and no directory it made; the
// undo used to try the directory while ring.json was still in it.
func TestCreateUndoAfterOpenFails(t *testing.T) {
	probe := filepath.Join(t.TempDir(), "ring")
	r, err := Create(probe, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	segs := len(r.rfiles)
	r.Close()

	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	// Room for the creation and the read side, not for the write side.
	lim := old
	lim.Cur = uint64(len(ents) + segs + 3)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ring")
	_, err = Create(dir, testOpts())
	unix.Setrlimit(unix.RLIMIT_NOFILE, &old)
	if !errors.Is(err, unix.EMFILE) {
		t.Fatalf("Create with %d descriptors to spare for %d segments: %v, want EMFILE", segs+3, segs, err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		ents, _ := os.ReadDir(dir)
		t.Errorf("the failed creation left its directory (%v) holding %d entries", err, len(ents))
	}
}

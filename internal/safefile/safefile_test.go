package safefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// within fails the test if f does not return within 10 s: a FIFO that is
// opened or read blocks forever.
func within(t *testing.T, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("blocked on a FIFO")
		return nil
	}
}

func TestOpenRefusesWhatIsNotAFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	os.WriteFile(filepath.Join(dir, "target"), []byte("x"), 0o644)
	os.Symlink("target", link)
	for _, flag := range []int{os.O_RDONLY, os.O_RDWR} {
		err := within(t, func() error { _, err := Open(fifo, flag); return err })
		if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "FIFO") {
			t.Errorf("open FIFO (flag %#x): %v, want a refusal naming a FIFO", flag, err)
		}
		if _, err := Open(link, flag); !errors.Is(err, syscall.ELOOP) {
			t.Errorf("open symlink: %v, want ELOOP", err)
		}
	}
	if err := within(t, func() error { _, err := ReadFile(fifo, 1<<20); return err }); !errors.Is(err, ErrNotRegular) {
		t.Errorf("ReadFile of a FIFO: %v", err)
	}
	if _, err := Open(dir, os.O_RDONLY); !errors.Is(err, ErrNotRegular) {
		t.Errorf("open directory: %v, want ErrNotRegular", err)
	}
}

func TestReadFileLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: 20 GB that take no room, and must take no memory either.
	if err := f.Truncate(20 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := ReadFile(path, 1<<20); err == nil || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Errorf("ReadFile of 20 GB: %v, want a refusal over the limit", err)
	}
	os.Truncate(path, 1<<20)
	if b, err := ReadFile(path, 1<<20); err != nil || len(b) != 1<<20 {
		t.Errorf("ReadFile at the limit: %d bytes, %v", len(b), err)
	}
	// A file that stays usable as a blocking file afterwards.
	f, err = Open(path, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fl, _ := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0); fl&unix.O_NONBLOCK != 0 {
		t.Error("O_NONBLOCK left set")
	}
}

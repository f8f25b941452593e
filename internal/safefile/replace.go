package safefile

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// WriteFile and SyncDir replace small files (metadata, state, manifests,
// keys) so that a power cut leaves the old or the new content, never a mix.

// WriteFile writes data to a temporary file next to path, syncs it and
// renames it over path. The temporary's name is fixed (".tmp-" + the base
// name: hidden, so the upload queue never takes it, and reused, so one
// left by a power cut is overwritten by the next write rather than piling
// up). The caller calls SyncDir when the rename itself must be durable.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	// A leftover keeps its own mode through O_TRUNC: start afresh so that
	// perm holds (a private key must not inherit 0644). O_EXCL|O_NOFOLLOW:
	// a symlink planted under the temporary's name is never written
	// through (the directory may be on the customer's disk).
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// SyncDir makes the renames and creations in dir durable. O_DIRECTORY: a
// FIFO or device put in a directory's place fails at once instead of
// blocking the open.
func SyncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	err = unix.Fsync(fd)
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// Package safefile reads and writes files on a disk the probe does not
// trust (the customer's USB disk) and may lose power at any time: a symlink
// is not followed, a FIFO, socket or device put where a file of ours
// belongs is refused before any I/O that could block on it or read from it
// without end, and a replaced file holds the old or the new content, never
// a mix.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// ErrNotRegular is wrapped by the error for a name that is not a regular
// file (a directory, FIFO, socket or device; a symlink fails with ELOOP).
var ErrNotRegular = errors.New("not a regular file")

// Open opens path with flag (os.O_RDONLY, os.O_RDWR, plus e.g. O_DIRECT)
// never following a symlink and only if it is a regular file. The open
// itself does not block: O_NONBLOCK makes opening a FIFO return at once,
// and it is cleared again once the file is known to be regular.
func Open(path string, flag int) (*os.File, error) {
	fd, err := unix.Open(path, flag|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("%s is a %s: %w", path, kind(st.Mode), ErrNotRegular)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// ReadFile reads path as Open does, refusing a file of more than limit
// bytes (a sparse file of 20 GB must not become a 20 GB allocation).
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := Open(path, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

func kind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	}
	return fmt.Sprintf("file of mode %#o", mode&unix.S_IFMT)
}

// Package devicepw keeps the probe's own gokrazy password. Every card
// flashed from one image shares the image's password, readable from the SD
// card; gokrazy reads /perm/gokr-pw.txt before /etc/gokr-pw.txt, so a random
// one there makes each probe's web UI and update endpoint its own (from the
// next boot on).
package devicepw

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/presscap/presscap/internal/safefile"
)

// FileName is the file gokrazy reads in /perm.
const FileName = "gokr-pw.txt"

// Ensure returns the password in dir/gokr-pw.txt, creating it when the file
// is missing: 26 base32 characters from crypto/rand (130 bits), mode 0600,
// in place complete or not at all. A present password is never replaced (it
// survives updates, and the provider has it from a report); only a file
// holding no password at all is, since gokrazy would take its emptiness as
// the password. created says whether this call made it. The password must
// never be logged.
func Ensure(dir string) (pw string, created bool, err error) {
	path := filepath.Join(dir, FileName)
	pw, err = read(path)
	if err == nil && pw != "" {
		return pw, false, nil
	}
	empty := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	pw = rand.Text()
	if err := create(path, pw, empty); err != nil {
		if errors.Is(err, fs.ErrExist) { // made meanwhile by another process
			pw, err = read(path)
			return pw, false, err
		}
		return "", false, err
	}
	return pw, true, nil
}

// Read returns the password in dir/gokr-pw.txt without creating one: ""
// when there is none.
func Read(dir string) (string, error) {
	pw, err := read(filepath.Join(dir, FileName))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return pw, err
}

// read returns the password as gokrazy reads it (trimmed), tightening the
// file's mode to 0600 if someone widened it.
func read(path string) (string, error) {
	st, err := os.Lstat(path)
	if err != nil {
		return "", fmt.Errorf("device password: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("device password: %s is not a regular file (%s)", path, st.Mode().Type())
	}
	if st.Mode().Perm() != 0o600 {
		// vfat has no modes of its own (the mount's umask rules): try only.
		os.Chmod(path, 0o600)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("device password: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// create writes pw to a temporary file, syncs it and links it in place,
// which fails if the name exists: a power cut leaves no file or the whole
// password, and nothing present is replaced (unless replace: an empty
// file). File systems without hard links (vfat) get a rename after a check.
func create(path, pw string, replace bool) error {
	dir := filepath.Dir(path)
	// CreateTemp makes it 0600 (no chmod: vfat refuses one).
	f, err := os.CreateTemp(dir, ".tmp-"+FileName+"-")
	if err != nil {
		return fmt.Errorf("device password: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.WriteString(pw + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("device password: write %s: %w", tmp, err)
	}
	switch {
	case replace:
		err = os.Rename(tmp, path)
	default:
		err = os.Link(tmp, path)
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) {
			if _, serr := os.Lstat(path); serr == nil {
				return fmt.Errorf("device password: %w", fs.ErrExist)
			}
			err = os.Rename(tmp, path)
		}
	}
	if err != nil {
		return fmt.Errorf("device password: create %s: %w", path, err)
	}
	if err := safefile.SyncDir(dir); err != nil {
		return fmt.Errorf("device password: %w", err)
	}
	return nil
}

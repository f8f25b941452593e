package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrRefusedLayout means a directory the probe uses on the disk is a
// symlink, a file, or (on a file system that ignores case) a name that
// differs from ours in case: the customer's, not ours, so it is neither
// followed nor used.
var ErrRefusedLayout = errors.New("refused: the disk is not used until this is renamed or removed")

// CheckDir verifies that each existing component of rel under root is a
// real directory with exactly that name. With create, missing components
// are made (one mkdir each: nothing is followed); without, a missing one
// is fine. root itself is the probe's (the mount point or /perm).
func CheckDir(root, rel string, create bool) error {
	rel = filepath.Clean(rel)
	if rel == "." {
		return nil
	}
	if filepath.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%s is not below %s", rel, root)
	}
	dir := root
	for _, name := range strings.Split(rel, "/") {
		parent := dir
		dir = filepath.Join(dir, name)
		st, err := os.Lstat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			if !create {
				return nil
			}
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("create %s: %w", dir, err)
			}
			// Whatever is there now (ours, or a racing plant) is checked.
			st, err = os.Lstat(dir)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(dir)
			return fmt.Errorf("%s is a symlink (to %q), not a directory: not followed: %w", dir, target, ErrRefusedLayout)
		case !st.IsDir():
			return fmt.Errorf("%s is a %s where a directory belongs: %w", dir, kind(st.Mode()), ErrRefusedLayout)
		}
		if other, err := caseVariant(parent, name); err != nil {
			return err
		} else if other != "" {
			return fmt.Errorf("%s: the disk holds %q there (its file system ignores case), not %q: %w", parent, other, name, ErrRefusedLayout)
		}
	}
	return nil
}

// caseVariant returns the name under which dir lists the entry that a
// look-up of name found, when it is not name itself: on vfat and exfat
// "Ring" answers for "ring". "" when name is listed as it is.
func caseVariant(dir, name string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("list %s: %w", dir, err)
	}
	other := ""
	for _, e := range ents {
		if e.Name() == name {
			return "", nil
		}
		if other == "" && strings.EqualFold(e.Name(), name) {
			other = e.Name()
		}
	}
	if other == "" {
		// Neither: a short (8.3) alias or a name the file system folds
		// otherwise answered; still not ours.
		return "(another name)", nil
	}
	return other, nil
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "file"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsDir():
		return "directory"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "non-directory"
}

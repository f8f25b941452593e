// Package rootfs collects the files of a gokrazy root file system with
// their modes and writes them as a squashfs 4.0 image: zlib ("gzip")
// compression, which is the only one gokrazy's kernels read, 128 KiB blocks,
// everything owned by uid/gid 0, reproducible for a given build time.
package rootfs

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// BlockSize is the squashfs data block size.
const BlockSize = 128 << 10

// Modes gokrazy uses: nothing in the root is writable.
const (
	DirMode     fs.FileMode = 0o555
	FileMode    fs.FileMode = 0o444
	ProgramMode fs.FileMode = 0o755
	SecretMode  fs.FileMode = 0o400
)

type kind int

const (
	kindDir kind = iota
	kindFile
	kindSymlink
)

type entry struct {
	kind   kind
	mode   fs.FileMode
	data   []byte
	host   string // file content comes from here when set
	target string // symlink target
}

// Tree is the root file system being assembled. Paths are absolute,
// slash-separated; parent directories are created with DirMode.
type Tree struct {
	entries map[string]*entry
}

// NewTree returns a tree holding only the root directory.
func NewTree() *Tree {
	return &Tree{entries: map[string]*entry{"/": {kind: kindDir, mode: DirMode}}}
}

func cleanPath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("rootfs: path %q is not absolute", p)
	}
	c := path.Clean(p)
	if c != p && c+"/" != p {
		return "", fmt.Errorf("rootfs: path %q is not clean (want %q)", p, c)
	}
	return c, nil
}

func (t *Tree) add(p string, e *entry) error {
	p, err := cleanPath(p)
	if err != nil {
		return err
	}
	if p == "/" {
		return fmt.Errorf("rootfs: cannot replace /")
	}
	if err := t.mkdirAll(path.Dir(p)); err != nil {
		return err
	}
	if old, ok := t.entries[p]; ok {
		if old.kind == kindDir && e.kind == kindDir {
			old.mode = e.mode
			return nil
		}
		return fmt.Errorf("rootfs: %s added twice", p)
	}
	t.entries[p] = e
	return nil
}

func (t *Tree) mkdirAll(p string) error {
	if p == "/" {
		return nil
	}
	if e, ok := t.entries[p]; ok {
		if e.kind != kindDir {
			return fmt.Errorf("rootfs: %s is not a directory", p)
		}
		return nil
	}
	if err := t.mkdirAll(path.Dir(p)); err != nil {
		return err
	}
	t.entries[p] = &entry{kind: kindDir, mode: DirMode}
	return nil
}

// Dir adds a directory (a mount point, for instance).
func (t *Tree) Dir(p string) error { return t.add(p, &entry{kind: kindDir, mode: DirMode}) }

// File adds a file with the given content and mode.
func (t *Tree) File(p string, data []byte, mode fs.FileMode) error {
	return t.add(p, &entry{kind: kindFile, mode: mode.Perm(), data: data})
}

// HostFile adds a file whose content is read from host at write time.
func (t *Tree) HostFile(p, host string, mode fs.FileMode) error {
	if _, err := os.Stat(host); err != nil {
		return fmt.Errorf("rootfs: %s: %w", p, err)
	}
	return t.add(p, &entry{kind: kindFile, mode: mode.Perm(), host: host})
}

// Symlink adds a symbolic link.
func (t *Tree) Symlink(p, target string) error {
	return t.add(p, &entry{kind: kindSymlink, mode: 0o777, target: target})
}

// HostDir copies a host directory tree below p: directories DirMode,
// files FileMode (kernel modules and the like).
func (t *Tree) HostDir(p, host string) error {
	return filepath.WalkDir(host, func(hp string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(host, hp)
		if err != nil {
			return err
		}
		dst := path.Join(p, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			return t.Dir(dst)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(hp)
			if err != nil {
				return err
			}
			return t.Symlink(dst, target)
		case d.Type().IsRegular():
			return t.HostFile(dst, hp, FileMode)
		default:
			return fmt.Errorf("rootfs: %s: unsupported file type %v", hp, d.Type())
		}
	})
}

// Paths lists every path in the tree, sorted.
func (t *Tree) Paths() []string {
	out := make([]string, 0, len(t.entries))
	for p := range t.entries {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// WriteSquashfs writes the tree as a squashfs image to the file at out
// (replaced) and returns its size. Every inode is owned by uid/gid 0 and
// carries mtime, whoever runs the build; the same tree and mtime give the
// same bytes.
//
// The writer is our own (squashfs.go). go-diskfs v1.9.4's cannot be used:
// its tree walk lists extended attributes through symbolic links, so the
// absolute links a gokrazy root needs (/etc/resolv.conf -> /tmp/resolv.conf,
// /var -> /perm/var), which dangle on the build machine, make it fail.
func (t *Tree) WriteSquashfs(out string, mtime time.Time) (int64, error) {
	if err := os.Remove(out); err != nil && !os.IsNotExist(err) {
		return 0, err
	}
	f, err := os.OpenFile(out, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, fmt.Errorf("rootfs: %w", err)
	}
	defer f.Close()
	n, err := t.writeSquashfs(f, mtime)
	if err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	return n, nil
}

// List runs unsquashfs -lln on an image and maps each path to
// "mode uid/gid", with " -> target" for symbolic links.
func List(img string) (map[string]string, error) {
	un, err := exec.LookPath("unsquashfs")
	if err != nil {
		return nil, fmt.Errorf("rootfs: unsquashfs not found: install the Debian package squashfs-tools")
	}
	out, err := exec.Command(un, "-lln", "-d", "", img).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("rootfs: unsquashfs -lln: %v\n%s", err, out)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		// mode uid/gid size date time [path [-> target]]
		if len(f) < 5 || len(f[0]) != 10 || !strings.Contains(f[1], "/") {
			continue
		}
		p := "/"
		if len(f) >= 6 {
			p = f[5]
		}
		v := f[0] + " " + f[1]
		if len(f) >= 8 && f[6] == "->" {
			v += " -> " + f[7]
		}
		m[p] = v
	}
	return m, nil
}

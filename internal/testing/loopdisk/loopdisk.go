// Package loopdisk makes real disks for tests: a file system in a file on
// a loop device, its node in a private dev directory, so that a disk
// finder sees only it and a test can pull and replug it.
package loopdisk

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"golang.org/x/sys/unix"
)

// Disk is an ext4 filesystem in a file, attached to a loop device,
// with its node copied into a private dev directory so that the finder
// sees only it (and the test can "pull" it by removing the node).
type Disk struct {
	Loop   string // /dev/loopN
	Name   string // loopN
	DevDir string
	Rdev   uint64
	Label  string
}

// New is NewFS with ext4.
func New(t testing.TB, sizeMiB int, readOnly bool) *Disk {
	t.Helper()
	return NewFS(t, "ext4", sizeMiB, readOnly)
}

// NewFS makes a disk of sizeMiB with fstype "ext4", "vfat" (FAT32) or
// "exfat".
func NewFS(t testing.TB, fstype string, sizeMiB int, readOnly bool) *Disk {
	t.Helper()
	mkfs := map[string]string{"ext4": "mkfs.ext4", "vfat": "mkfs.vfat", "exfat": "mkfs.exfat"}[fstype]
	netnstest.Require(t, mkfs, "losetup")
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(sizeMiB) << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	label := "PC" + strings.ToUpper(netnstest.RandomSuffix(8))
	args := []string{"-q", "-F", "-L", label, "-m", "0", img}
	switch fstype {
	case "vfat":
		args = []string{"-F", "32", "-n", label, img}
	case "exfat":
		args = []string{"-L", label, img}
	}
	if out, err := exec.Command(mkfs, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", mkfs, err, out)
	}
	args = []string{"--find", "--show"}
	if readOnly {
		args = append(args, "--read-only")
	}
	out, err := exec.Command("losetup", append(args, img)...).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v\n%s", err, out)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })
	var st unix.Stat_t
	if err := unix.Stat(loop, &st); err != nil {
		t.Fatal(err)
	}
	d := &Disk{Loop: loop, Name: filepath.Base(loop), DevDir: t.TempDir(), Rdev: st.Rdev, Label: label}
	d.Plug(t)
	return d
}

// Plug makes the disk's node appear in DevDir.
func (d *Disk) Plug(t testing.TB) {
	t.Helper()
	if err := unix.Mknod(filepath.Join(d.DevDir, d.Name), unix.S_IFBLK|0o600, int(d.Rdev)); err != nil {
		t.Fatal(err)
	}
}

// Pull removes the disk's node from DevDir, as a pulled disk's goes.
func (d *Disk) Pull(t testing.TB) {
	t.Helper()
	if err := os.Remove(filepath.Join(d.DevDir, d.Name)); err != nil {
		t.Fatal(err)
	}
}

package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/presscap/presscap/internal/disklabel"

	"golang.org/x/sys/unix"
)

// ErrNoDisk means no block device matched the configuration.
var ErrNoDisk = errors.New("no disk found")

// DiskFinder finds the USB disk's partition. gokrazy has no udev, so there
// is no /dev/disk/by-label: labels are read from the filesystems'
// superblocks.
type DiskFinder struct {
	SysBlock string // /sys/class/block
	DevDir   string // /dev
	Label    string // filesystem label to look for first
	FirstUSB bool   // else the first partition of the first USB disk
	Device   string // an explicit device path overrides both
}

// Find returns the device path and how it was chosen.
func (f DiskFinder) Find() (dev, how string, err error) {
	if f.Device != "" {
		if _, err := os.Stat(f.Device); err != nil {
			return "", "", fmt.Errorf("%w: storage.device %s: %v", ErrNoDisk, f.Device, err)
		}
		return f.Device, "configured device", nil
	}
	ents, err := os.ReadDir(f.SysBlock)
	if err != nil {
		return "", "", fmt.Errorf("list block devices: %w", err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if f.Label != "" {
		for _, n := range names {
			dev := filepath.Join(f.DevDir, n)
			if _, err := os.Stat(dev); err != nil {
				continue
			}
			if lbl, _, err := disklabel.Read(dev); err == nil && lbl == f.Label {
				return dev, "label " + f.Label, nil
			}
		}
	}
	if f.FirstUSB {
		for _, n := range names {
			if !f.isUSBDisk(n) {
				continue
			}
			parts := f.partitions(n)
			cand := n
			if len(parts) > 0 {
				cand = parts[0]
			}
			dev := filepath.Join(f.DevDir, cand)
			if _, err := os.Stat(dev); err == nil {
				return dev, "first USB disk partition", nil
			}
		}
	}
	return "", "", ErrNoDisk
}

// isUSBDisk reports whether name is a whole disk attached through USB: its
// sysfs path runs through a USB device.
func (f DiskFinder) isUSBDisk(name string) bool {
	if _, err := os.Stat(filepath.Join(f.SysBlock, name, "partition")); err == nil {
		return false
	}
	target, err := filepath.EvalSymlinks(filepath.Join(f.SysBlock, name))
	if err != nil {
		return false
	}
	if size := readUint(filepath.Join(f.SysBlock, name, "size")); size == 0 {
		return false // a card reader without a card
	}
	return strings.Contains(target, "/usb")
}

func (f DiskFinder) partitions(disk string) []string {
	ents, _ := os.ReadDir(filepath.Join(f.SysBlock, disk))
	var parts []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), disk) {
			if _, err := os.Stat(filepath.Join(f.SysBlock, disk, e.Name(), "partition")); err == nil {
				parts = append(parts, e.Name())
			}
		}
	}
	sort.Slice(parts, func(i, j int) bool {
		return readUint(filepath.Join(f.SysBlock, disk, parts[i], "partition")) < readUint(filepath.Join(f.SysBlock, disk, parts[j], "partition"))
	})
	return parts
}

func readUint(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// mountedAt returns the source mounted at dir (from /proc/self/mountinfo)
// and whether it is mounted read-only, or "" if nothing is.
func mountedAt(dir string) (source string, ro bool) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", false
	}
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 10 || unescapeMount(fields[4]) != dir {
			continue
		}
		// After the separator "-": fstype, source, super options.
		for i, f := range fields {
			if f == "-" && i+2 < len(fields) {
				source = fields[i+2]
				ro = strings.HasPrefix(fields[5], "ro")
			}
		}
	}
	return source, ro
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ErrReadOnly means the disk cannot be written.
var ErrReadOnly = errors.New("disk is read-only")

// mountFlags protect the probe from the disk, which is the customer's: no
// symlink on it is followed (MS_NOSYMFOLLOW, Linux 5.10), and nothing on it
// is a device, a setuid program or executable.
const mountFlags = unix.MS_NOATIME | unix.MS_NODEV | unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NOSYMFOLLOW

// mount mounts dev at dir with the first fstype that works. A disk that
// refuses to be mounted writable is reported as ErrReadOnly. A disk already
// mounted there (by an earlier run) gets mountFlags by a remount.
func mount(dev, dir string, fstypes []string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("mount point: %w", err)
	}
	if src, ro := mountedAt(dir); src != "" {
		if ro {
			return "", fmt.Errorf("%s mounted at %s: %w", src, dir, ErrReadOnly)
		}
		if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|mountFlags, ""); err != nil {
			return "", fmt.Errorf("%s mounted at %s: remount without symlinks: %w", src, dir, err)
		}
		return "already mounted", nil
	}
	var errs []error
	for _, fs := range fstypes {
		err := unix.Mount(dev, dir, fs, mountFlags, "")
		if err == nil {
			return fs, nil
		}
		if errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES) {
			return "", fmt.Errorf("mount %s (%s): %w", dev, fs, ErrReadOnly)
		}
		errs = append(errs, fmt.Errorf("%s: %w", fs, err))
	}
	return "", fmt.Errorf("mount %s at %s: %w", dev, dir, errors.Join(errs...))
}

// unmount detaches dir even if files are still open on it (a pulled disk).
func unmount(dir string) error {
	if src, _ := mountedAt(dir); src == "" {
		return nil
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}

// freeBytes returns the space available to us on the filesystem of dir and
// its total size.
func freeBytes(dir string) (free, total int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return int64(st.Bavail) * st.Bsize, int64(st.Blocks) * st.Bsize, nil
}

package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/ringfs"
	"golang.org/x/sys/unix"
)

// loopDisk is an ext4 filesystem in a file, attached to a loop device,
// with its node copied into a private dev directory so that the finder
// sees only it (and the test can "pull" it by removing the node).
type loopDisk struct {
	loop   string // /dev/loopN
	name   string // loopN
	devDir string
	rdev   uint64
	label  string
}

func newLoopDisk(t *testing.T, sizeMiB int, readOnly bool) *loopDisk {
	t.Helper()
	return newLoopDiskFS(t, "ext4", sizeMiB, readOnly)
}

// newLoopDiskFS is newLoopDisk with fstype "ext4", "vfat" (FAT32) or
// "exfat".
func newLoopDiskFS(t *testing.T, fstype string, sizeMiB int, readOnly bool) *loopDisk {
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
	d := &loopDisk{loop: loop, name: filepath.Base(loop), devDir: t.TempDir(), rdev: st.Rdev, label: label}
	d.plug(t)
	return d
}

func (d *loopDisk) plug(t *testing.T) {
	t.Helper()
	if err := unix.Mknod(filepath.Join(d.devDir, d.name), unix.S_IFBLK|0o600, int(d.rdev)); err != nil {
		t.Fatal(err)
	}
}

func (d *loopDisk) pull(t *testing.T) {
	t.Helper()
	if err := os.Remove(filepath.Join(d.devDir, d.name)); err != nil {
		t.Fatal(err)
	}
}

type logBuf struct {
	mu    sync.Mutex
	lines []string
	t     *testing.T
}

func (l *logBuf) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, sprintf(format, args...))
	if l.t != nil {
		l.t.Logf(format, args...)
	}
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func storageConfig(d *loopDisk, t *testing.T) StorageConfig {
	return StorageConfig{
		Finder:     DiskFinder{SysBlock: "/sys/class/block", DevDir: d.devDir, Label: d.label},
		MountPoint: filepath.Join(t.TempDir(), "mnt"),
		FSTypes:    []string{"ext4"},
		RingDir:    "ring",
		RingSize:   ringfs.MinSize,
		Retry:      100 * time.Millisecond,
		Links:      []string{"eth0"},
		LinkType:   1,
	}
}

func runStorage(t *testing.T, s *Storage) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func waitState(t *testing.T, s *Storage, want string) StorageState {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := s.State()
		if st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("storage state %+v, want %s", st, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDiskByLabelRecordPullAndReplug(t *testing.T) {
	d := newLoopDisk(t, 160, false)
	cfg := storageConfig(d, t)
	var log logBuf
	s := NewStorage(cfg, log.logf)
	var changes []string
	var errs []string
	var mu sync.Mutex
	s.OnChange = func(st StorageState) {
		mu.Lock()
		changes = append(changes, st.State)
		errs = append(errs, st.Error)
		mu.Unlock()
	}
	// States pass quickly (failed, then no disk while it stays away):
	// wait on the record of changes, not on the current state.
	waitChange := func(want string, n int) string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			mu.Lock()
			for i := n; i < len(changes); i++ {
				if changes[i] == want {
					e := errs[i]
					mu.Unlock()
					return e
				}
			}
			mu.Unlock()
			if time.Now().After(deadline) {
				t.Fatalf("no change to %s; changes %v", want, changes)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	runStorage(t, s)

	st := waitState(t, s, DiskRecording)
	if st.Device != filepath.Join(d.devDir, d.name) || st.Root != cfg.MountPoint {
		t.Fatalf("state %+v", st)
	}
	if src, _ := mountedAt(cfg.MountPoint); src == "" {
		t.Fatal("not mounted")
	}
	at := time.Now().UnixNano()
	if err := s.Append(ringfs.Record{Time: at, Link: 0, OrigLen: 60, Data: make([]byte, 60)}); err != nil {
		t.Fatal(err)
	}
	ring, _, err := s.Ring()
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Flush(); err != nil {
		t.Fatal(err)
	}

	// Pulled while recording: the device node goes away.
	d.pull(t)
	if e := waitChange(DiskFailed, 1); !strings.Contains(e, "gone") {
		t.Errorf("error %q does not say the device is gone", e)
	}
	if src, _ := mountedAt(cfg.MountPoint); src != "" {
		t.Error("still mounted after the disk was pulled")
	}
	if err := s.Append(ringfs.Record{Time: at, Data: []byte{1}, OrigLen: 1}); err == nil {
		t.Error("Append succeeded without a disk")
	}
	if _, _, err := s.Ring(); err == nil || !strings.Contains(err.Error(), "no ring") {
		t.Errorf("Ring() without disk = %v", err)
	}

	// Back: the same ring is reopened, with the packet written before.
	d.plug(t)
	waitChange(DiskRecording, 2)
	ring, _, err = s.Ring()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if _, err := ring.Read(context.Background(), at, at+1, func(r ringfs.Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("packet written before the pull: found %d, want 1", n)
	}
	mu.Lock()
	got := strings.Join(changes, ",")
	mu.Unlock()
	if got != "recording,failed,recording" && got != "recording,failed,no disk,recording" {
		t.Errorf("state changes %s", got)
	}
}

func TestDiskMissingAndPermFallback(t *testing.T) {
	netnstest.Require(t)
	cfg := StorageConfig{
		Finder:     DiskFinder{SysBlock: "/sys/class/block", DevDir: t.TempDir(), Label: "NOSUCHLABEL", FirstUSB: true},
		MountPoint: filepath.Join(t.TempDir(), "mnt"),
		FSTypes:    []string{"ext4"},
		RingDir:    "ring",
		RingSize:   ringfs.MinSize,
		Retry:      100 * time.Millisecond,
		Links:      []string{"eth0"},
	}
	s := NewStorage(cfg, t.Logf)
	runStorage(t, s)
	time.Sleep(300 * time.Millisecond)
	st := waitState(t, s, DiskMissing)
	if !strings.Contains(st.Error, "no disk found") {
		t.Errorf("error %q", st.Error)
	}
	if err := s.Append(ringfs.Record{Time: 1, Data: []byte{1}, OrigLen: 1}); !errors.Is(err, errNoRing) {
		t.Errorf("Append without disk = %v", err)
	}

	cfg.FallbackPerm = true
	cfg.PermDir = filepath.Join(t.TempDir(), "perm", "presscap")
	s2 := NewStorage(cfg, t.Logf)
	runStorage(t, s2)
	st = waitState(t, s2, DiskRecording)
	if st.Root != cfg.PermDir || st.How != "fallback_perm" {
		t.Errorf("fallback state %+v", st)
	}
	if _, err := os.Stat(filepath.Join(cfg.PermDir, "ring", "ring.json")); err != nil {
		t.Errorf("no ring on the fallback: %v", err)
	}
}

func TestDiskFull(t *testing.T) {
	d := newLoopDisk(t, 128, false)
	// Fill it: mount, write a big file, unmount.
	mnt := t.TempDir()
	if err := unix.Mount(d.loop, mnt, "ext4", 0, ""); err != nil {
		t.Fatal(err)
	}
	fill := exec.Command("fallocate", "-l", "80M", filepath.Join(mnt, "fill"))
	if out, err := fill.CombinedOutput(); err != nil {
		unix.Unmount(mnt, 0)
		t.Fatalf("fallocate: %v %s", err, out)
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	cfg := storageConfig(d, t)
	// One attempt only: each retry mounts the disk again for the moment
	// it takes to find it full, and the check below must not land there.
	cfg.Retry = time.Hour
	s := NewStorage(cfg, t.Logf)
	runStorage(t, s)
	st := waitState(t, s, DiskFull)
	if !strings.Contains(st.Error, "MiB free") {
		t.Errorf("error %q does not say how much is free", st.Error)
	}
	if src, _ := mountedAt(cfg.MountPoint); src != "" {
		t.Error("a full disk stays mounted")
	}
}

func TestDiskReadOnly(t *testing.T) {
	d := newLoopDisk(t, 96, true)
	cfg := storageConfig(d, t)
	s := NewStorage(cfg, t.Logf)
	runStorage(t, s)
	st := waitState(t, s, DiskReadOnly)
	if !strings.Contains(st.Error, "read-only") {
		t.Errorf("error %q", st.Error)
	}
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// TestFirstUSBPartition uses a sysfs tree shaped like the kernel's: an
// SD card (mmcblk0) and a USB disk (sda) whose device path runs through
// the USB bus, with two partitions.
func TestFirstUSBPartition(t *testing.T) {
	root := t.TempDir()
	devices := filepath.Join(root, "devices")
	sys := filepath.Join(root, "class", "block")
	dev := t.TempDir()
	mk := func(path, content string) {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mmc := filepath.Join(devices, "platform/emmc2bus/fe340000.mmc/mmc_host/mmc0/mmc0:1234/block/mmcblk0")
	usb := filepath.Join(devices, "platform/scb/fd500000.pcie/pci0000:00/0000:01:00.0/usb2/2-1/2-1:1.0/host0/target0:0:0/0:0:0:0/block/sda")
	mk(filepath.Join(mmc, "size"), "62333952\n")
	mk(filepath.Join(mmc, "mmcblk0p1", "partition"), "1\n")
	mk(filepath.Join(usb, "size"), "1953525168\n")
	mk(filepath.Join(usb, "sda2", "partition"), "2\n")
	mk(filepath.Join(usb, "sda1", "partition"), "1\n")
	os.MkdirAll(sys, 0o755)
	for name, target := range map[string]string{
		"mmcblk0": mmc, "mmcblk0p1": filepath.Join(mmc, "mmcblk0p1"),
		"sda": usb, "sda1": filepath.Join(usb, "sda1"), "sda2": filepath.Join(usb, "sda2"),
	} {
		if err := os.Symlink(target, filepath.Join(sys, name)); err != nil {
			t.Fatal(err)
		}
		mk(filepath.Join(dev, name), "") // stands in for the device node
	}
	f := DiskFinder{SysBlock: sys, DevDir: dev, Label: "PRESSCAP", FirstUSB: true}
	got, how, err := f.Find()
	if err != nil || got != filepath.Join(dev, "sda1") || how != "first USB disk partition" {
		t.Fatalf("Find = %q %q %v, want sda1", got, how, err)
	}
	f.FirstUSB = false
	if _, _, err := f.Find(); !errors.Is(err, ErrNoDisk) {
		t.Fatalf("without first_usb: %v", err)
	}
	// A USB card reader without a card (size 0) is not a disk.
	mk(filepath.Join(usb, "size"), "0\n")
	f.FirstUSB = true
	if _, _, err := f.Find(); !errors.Is(err, ErrNoDisk) {
		t.Fatalf("empty reader: %v", err)
	}
}

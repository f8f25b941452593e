package storage

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/loopdisk"
	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/ringfs"
	"golang.org/x/sys/unix"
)

func storageConfig(d *loopdisk.Disk, t *testing.T) Config {
	return Config{
		Finder:     DiskFinder{SysBlock: "/sys/class/block", DevDir: d.DevDir, Label: d.Label},
		MountPoint: filepath.Join(t.TempDir(), "mnt"),
		FSTypes:    []string{"ext4"},
		RingDir:    "ring",
		RingSize:   ringfs.MinSize,
		Retry:      100 * time.Millisecond,
		Links:      []string{"eth0"},
		LinkType:   1,
	}
}

func runStorage(t *testing.T, s *Manager) {
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

func waitState(t *testing.T, s *Manager, want string) State {
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
	d := loopdisk.New(t, 160, false)
	cfg := storageConfig(d, t)
	var log testtool.Log
	s := New(cfg, log.Logf)
	var changes []string
	var errs []string
	var mu sync.Mutex
	s.OnChange = func(st State) {
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
	if st.Device != filepath.Join(d.DevDir, d.Name) || st.Root != cfg.MountPoint {
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
	d.Pull(t)
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
	d.Plug(t)
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
	cfg := Config{
		Finder:     DiskFinder{SysBlock: "/sys/class/block", DevDir: t.TempDir(), Label: "NOSUCHLABEL", FirstUSB: true},
		MountPoint: filepath.Join(t.TempDir(), "mnt"),
		FSTypes:    []string{"ext4"},
		RingDir:    "ring",
		RingSize:   ringfs.MinSize,
		Retry:      100 * time.Millisecond,
		Links:      []string{"eth0"},
	}
	s := New(cfg, t.Logf)
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
	s2 := New(cfg, t.Logf)
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
	d := loopdisk.New(t, 128, false)
	// Fill it: mount, write a big file, unmount.
	mnt := t.TempDir()
	if err := unix.Mount(d.Loop, mnt, "ext4", 0, ""); err != nil {
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
	s := New(cfg, t.Logf)
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
	d := loopdisk.New(t, 96, true)
	cfg := storageConfig(d, t)
	s := New(cfg, t.Logf)
	runStorage(t, s)
	st := waitState(t, s, DiskReadOnly)
	if !strings.Contains(st.Error, "read-only") {
		t.Errorf("error %q", st.Error)
	}
}

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

package storage

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/loopdisk"
	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/ringfs"
	"golang.org/x/sys/unix"
)

// mountDisk mounts d at dir with the kernel's file system, or for vfat and
// exfat without them in the running kernel (this test machine's has
// neither) with FUSE's fusefat or exfat-fuse: a real FAT or exFAT file
// system either way, with its folding of case. fuse says which.
func mountDisk(t *testing.T, d *loopdisk.Disk, fstype, dir string) (fuse bool) {
	t.Helper()
	if fstype == "ext4" || kernelHas(fstype) {
		mustDo(t, unix.Mount(d.Loop, dir, fstype, 0, ""))
		return false
	}
	cmd := map[string][]string{"vfat": {"fusefat", "-o", "rw+"}, "exfat": {"mount.exfat-fuse"}}[fstype]
	netnstest.Require(t, cmd[0])
	if out, err := exec.Command(cmd[0], append(cmd[1:], d.Loop, dir)...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd[0], err, out)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return true
}

// kernelHas says whether the running kernel mounts fstype (loading its
// module if it can).
func kernelHas(fstype string) bool {
	has := func() bool {
		b, _ := os.ReadFile("/proc/filesystems")
		return strings.Contains(string(b), "\t"+fstype+"\n")
	}
	if !has() {
		exec.Command("modprobe", fstype).Run()
	}
	return has()
}

// diskAttack is a layout a customer (or malware on their laptop) could
// leave on the USB disk, and what the probe must make of it.
type diskAttack struct {
	name string
	// lay writes the layout onto the disk mounted at mnt; outside is a
	// directory off the disk, standing for /perm.
	lay func(t *testing.T, mnt, outside string)
	// want is in the refusal (the storage state's error and the log);
	// "" means the disk is used.
	want string
	// check runs on the disk after the probe had it (mounted again at
	// mnt), and on outside.
	check func(t *testing.T, mnt, outside string)
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeAt(t *testing.T, path, content string) {
	t.Helper()
	mustDo(t, os.MkdirAll(filepath.Dir(path), 0o755))
	mustDo(t, os.WriteFile(path, []byte(content), 0o644))
}

// nothingOutside: no file appeared outside the disk.
func nothingOutside(t *testing.T, _, outside string) {
	t.Helper()
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("the probe wrote through a symlink off the disk: %v", ents)
	}
}

// unchanged: path still holds content.
func unchanged(path, content string) func(t *testing.T, mnt, outside string) {
	return func(t *testing.T, mnt, outside string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(mnt, path))
		if err != nil || string(b) != content {
			t.Errorf("the customer's %s: %q %v, want %q", path, b, err, content)
		}
	}
}

func symlinkAttack(name, path string) diskAttack {
	return diskAttack{name: name,
		lay: func(t *testing.T, mnt, outside string) {
			target := outside
			if strings.HasPrefix(path, ".") {
				target = filepath.Join(outside, "gokr-pw.txt") // gokrazy's update password
			}
			mustDo(t, os.Symlink(target, filepath.Join(mnt, path)))
		},
		want: filepath.Base(path) + " is a symlink", check: nothingOutside}
}

// customersRing is a directory named like the ring holding the customer's
// photo and, in a segment's place, a directory: today's failed creation
// removed it all.
func customersRing(ring string) diskAttack {
	return diskAttack{name: "customer's files in " + ring,
		lay: func(t *testing.T, mnt, _ string) {
			writeAt(t, filepath.Join(mnt, ring, "holiday", "photo.jpg"), "jpeg")
			mustDo(t, os.Mkdir(filepath.Join(mnt, ring, "seg-000003"), 0o755))
		},
		want: "not part of a ring", check: unchanged(filepath.Join(ring, "holiday", "photo.jpg"), "jpeg")}
}

// fifoAttack puts a FIFO in the place of a ring's file (ring.json or a
// segment): opening it used to block the storage manager, and recording,
// for ever.
func fifoAttack(name string) diskAttack {
	return diskAttack{name: "ring's " + name + " is a FIFO",
		lay: func(t *testing.T, mnt, _ string) {
			dir := filepath.Join(mnt, "ring")
			r, err := ringfs.Create(dir, ringfs.Options{Size: ringfs.MinSize})
			mustDo(t, err)
			mustDo(t, r.Close())
			mustDo(t, os.Remove(filepath.Join(dir, name)))
			mustDo(t, unix.Mkfifo(filepath.Join(dir, name), 0o644))
		},
		want: name + " is a FIFO",
		check: func(t *testing.T, mnt, _ string) {
			if st, err := os.Lstat(filepath.Join(mnt, "ring", name)); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
				t.Errorf("the customer's FIFO %s: %v %v", name, st, err)
			}
		}}
}

func fileAttack(path string) diskAttack {
	return diskAttack{name: path + " is a file",
		lay:  func(t *testing.T, mnt, _ string) { writeAt(t, filepath.Join(mnt, path), "mine") },
		want: path + " is a file where a directory belongs", check: unchanged(path, "mine")}
}

func caseAttack(ours, theirs string) diskAttack {
	return diskAttack{name: theirs,
		lay:  func(t *testing.T, mnt, _ string) { writeAt(t, filepath.Join(mnt, theirs, "notes.txt"), "mine") },
		want: `holds "` + theirs + `" there`,
		check: func(t *testing.T, mnt, outside string) {
			unchanged(filepath.Join(theirs, "notes.txt"), "mine")(t, mnt, outside)
			ents, _ := os.ReadDir(filepath.Join(mnt, theirs))
			if len(ents) != 1 {
				t.Errorf("%s holds %d entries after the probe had the disk, want only the customer's", theirs, len(ents))
			}
		}}
}

// TestDiskAttacksRefused lays each attack on a real loop-mounted ext4 and
// vfat disk and runs the storage manager on it: a symlink is never
// followed, a directory of ours that is a symlink, a file or a case variant
// refuses the disk with the reason (the state, hence the LED, says failed),
// and nothing of the customer's is removed. A clean disk records.
func TestDiskAttacksRefused(t *testing.T) {
	attacks := map[string][]diskAttack{
		"ext4": {
			{name: "clean"},
			symlinkAttack("write test links to gokr-pw.txt", ".presscap-write-test"),
			symlinkAttack("ring is a symlink", "ring"),
			symlinkAttack("upload-queue is a symlink", "upload-queue"),
			symlinkAttack("save dir is a symlink", "captures"),
			fileAttack("ring"),
			fileAttack("upload-queue"),
			fileAttack("captures"),
			customersRing("ring"),
			fifoAttack("ring.json"),
			fifoAttack("seg-000000"),
		},
		// No symlinks on FAT and exFAT: case variants answer for our names.
		"vfat": {
			{name: "clean"},
			caseAttack("ring", "Ring"),
			caseAttack("upload-queue", "UPLOAD-QUEUE"),
			caseAttack("captures", "Captures"),
			fileAttack("ring"),
			fileAttack("upload-queue"),
			customersRing("ring"),
		},
		"exfat": {
			{name: "clean"},
			caseAttack("ring", "RING"),
			caseAttack("upload-queue", "Upload-Queue"),
			fileAttack("ring"),
			fileAttack("captures"),
			customersRing("ring"),
		},
	}
	for _, fstype := range []string{"ext4", "vfat", "exfat"} {
		for _, a := range attacks[fstype] {
			t.Run(fstype+"/"+a.name, func(t *testing.T) {
				d := loopdisk.NewFS(t, fstype, 160, false)
				mnt, outside := t.TempDir(), t.TempDir()
				fuse := mountDisk(t, d, fstype, mnt)
				if a.lay != nil {
					a.lay(t, mnt, outside)
				}
				mustDo(t, unix.Unmount(mnt, 0))

				cfg := storageConfig(d, t)
				cfg.FSTypes = []string{fstype}
				if fstype == "exfat" {
					// ReadLabel knows ext and FAT labels only.
					cfg.Finder = DiskFinder{Device: filepath.Join(d.DevDir, d.Name)}
				}
				cfg.Dirs = []string{"captures", "upload-queue"}
				cfg.Retry = time.Hour // one look: the check below mounts the disk
				if fuse {
					// The storage manager finds it mounted and remounts
					// it with its flags (no symlinks followed).
					mustDo(t, os.MkdirAll(cfg.MountPoint, 0o755))
					mountDisk(t, d, fstype, cfg.MountPoint)
				}
				log := testtool.Log{T: t}
				s := New(cfg, log.Logf)
				runStorage(t, s)
				// Mounted by the probe (kernel), or found mounted and
				// remounted (FUSE): the flags hold either way.
				if a.want == "" && (!fuse || fstype == "exfat") {
					waitState(t, s, DiskRecording)
					opts := mountOptions(cfg.MountPoint)
					for _, o := range []string{"nosymfollow", "nodev", "nosuid", "noexec"} {
						if !strings.Contains(","+opts+",", ","+o+",") {
							t.Errorf("the disk is mounted with %q, without %s", opts, o)
						}
					}
					return
				}
				if a.want == "" {
					// fusefat reports no free space (it has no statfs):
					// the disk is found full, but not refused.
					if st := waitState(t, s, DiskFull); strings.Contains(st.Error, ErrRefusedLayout.Error()) {
						t.Errorf("a clean disk refused: %s", st.Error)
					}
					return
				}
				st := waitState(t, s, DiskFailed)
				if !strings.Contains(st.Error, a.want) || !strings.Contains(st.Error, ErrRefusedLayout.Error()) {
					t.Errorf("refused with %q, want it to say %q and %q", st.Error, a.want, ErrRefusedLayout)
				}
				if !strings.Contains(log.String(), "storage: failed: "+st.Error) {
					t.Errorf("the refusal is not logged: %s", log.String())
				}
				if src, _ := mountedAt(cfg.MountPoint); src != "" {
					t.Error("a refused disk stays mounted")
				}
				mountDisk(t, d, fstype, mnt)
				defer unix.Unmount(mnt, 0)
				nothingOutside(t, mnt, outside)
				if a.check != nil {
					a.check(t, mnt, outside)
				}
			})
		}
	}
}

// mountOptions returns the per-mount options of the mount at dir.
func mountOptions(dir string) string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 5 && unescapeMount(f[4]) == dir {
			return f[5]
		}
	}
	return ""
}

// TestDiskSecondWall: where no mount flag protects the root (the /perm
// fallback, or a kernel without MS_NOSYMFOLLOW), the probe's own opens and
// checks still follow no symlink: the write test does not write
// gokr-pw.txt, the ring is not created through a link.
func TestDiskSecondWall(t *testing.T) {
	for _, c := range []struct{ name, link, want string }{
		{"write test", ".presscap-write-test", ".presscap-write-test is a symlink"},
		{"ring", "ring", "ring is a symlink"},
		{"queue", "upload-queue", "upload-queue is a symlink"},
	} {
		t.Run(c.name, func(t *testing.T) {
			outside := t.TempDir()
			perm := t.TempDir()
			target := outside
			if c.link == ".presscap-write-test" {
				target = filepath.Join(outside, "gokr-pw.txt")
			}
			mustDo(t, os.Symlink(target, filepath.Join(perm, c.link)))
			cfg := Config{
				Finder:       DiskFinder{SysBlock: t.TempDir(), DevDir: t.TempDir(), Label: "NOSUCHLABEL"},
				MountPoint:   filepath.Join(t.TempDir(), "mnt"),
				FallbackPerm: true, PermDir: perm,
				RingDir: "ring", Dirs: []string{"upload-queue"},
				RingSize: ringfs.MinSize, Retry: time.Hour, Links: []string{"eth0"},
			}
			s := New(cfg, t.Logf)
			runStorage(t, s)
			st := waitState(t, s, DiskFailed)
			if !strings.Contains(st.Error, c.want) || !errorsIsRefused(st.Error) {
				t.Errorf("state %q, want a refusal saying %q", st.Error, c.want)
			}
			nothingOutside(t, perm, outside)
		})
	}
}

func errorsIsRefused(msg string) bool { return strings.Contains(msg, ErrRefusedLayout.Error()) }

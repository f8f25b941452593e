package devicepw

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"

	"github.com/presscap/presscap/internal/testing/testtool"
)

// base32RE: rand.Text's alphabet; 26 characters of 5 bits are 130 bits.
var base32RE = regexp.MustCompile(`^[A-Z2-7]{26}$`)

func checkFile(t *testing.T, dir, want string) {
	t.Helper()
	path := filepath.Join(dir, FileName)
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || !st.Mode().IsRegular() {
		t.Errorf("%s has mode %s, want -rw-------", path, st.Mode())
	}
	b, _ := os.ReadFile(path)
	if string(b) != want+"\n" {
		t.Errorf("%s holds %q, want %q", path, b, want+"\n")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("%s holds %d entries, want only %s (no temporary left)", dir, len(ents), FileName)
	}
}

// TestEnsureCreatesOnceAndKeeps: the first call makes a 130-bit password,
// 0600; later calls (an update, a reboot) return it unchanged; another
// probe gets another one.
func TestEnsureCreatesOnceAndKeeps(t *testing.T) {
	dir := t.TempDir()
	pw, created, err := Ensure(dir)
	if err != nil || !created {
		t.Fatalf("first boot: created %v, %v", created, err)
	}
	if !base32RE.MatchString(pw) {
		t.Fatalf("password %q is not 26 base32 characters", pw)
	}
	checkFile(t, dir, pw)
	again, created, err := Ensure(dir)
	if err != nil || created || again != pw {
		t.Fatalf("second boot: created %v, same %v, %v", created, again == pw, err)
	}
	checkFile(t, dir, pw)
	other, _, err := Ensure(t.TempDir())
	if err != nil || other == pw {
		t.Fatalf("a second probe got the same password (%v)", err)
	}
}

// TestEnsureNeverReplacesAPassword: a password put there by hand is kept
// (its mode tightened); an empty file, which gokrazy would take as an empty
// password, is replaced; a symlink is refused and not followed.
func TestEnsureNeverReplacesAPassword(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	if err := os.WriteFile(path, []byte("  chosen-by-hand \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pw, created, err := Ensure(dir)
	if err != nil || created || pw != "chosen-by-hand" {
		t.Fatalf("got %q created %v, %v; want the hand-made one kept", pw, created, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %s not tightened to 0600", st.Mode())
	}

	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pw, created, err = Ensure(dir)
	if err != nil || !created || !base32RE.MatchString(pw) {
		t.Fatalf("empty file: got %q created %v, %v", pw, created, err)
	}
	checkFile(t, dir, pw)

	dir = t.TempDir()
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Symlink(target, filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Ensure(dir); err == nil {
		t.Fatal("a symlink was taken as the password file")
	}
	if _, err := os.Lstat(target); err == nil {
		t.Fatal("the symlink was written through")
	}
}

// TestEnsureRacers: processes starting together (the service and a
// subcommand) agree on one password.
func TestEnsureRacers(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Go(func() {
			pw, _, err := Ensure(dir)
			if err != nil {
				t.Error(err)
			}
			got[i] = pw
		})
	}
	wg.Wait()
	for _, pw := range got[1:] {
		if pw != got[0] {
			t.Fatalf("racers got different passwords: %q", got)
		}
	}
	checkFile(t, dir, got[0])
}

// TestEnsureOnVfat: gokrazy mounts /perm as vfat when it is not ext4; vfat
// has no hard links, so the password is renamed in place there.
func TestEnsureOnVfat(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root and a loop-mounted vfat")
	}
	testtool.Root(t, "mount a loop vfat")
	mkfs := testtool.Path(t, "mkfs.vfat", "dosfstools")
	img := filepath.Join(t.TempDir(), "perm.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 8<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs, img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v\n%s", err, out)
	}
	mnt := t.TempDir()
	// The kernel's vfat, or where it has none (this test machine) the FUSE
	// fusefat: a real FAT either way, without hard links.
	cmd := []string{"mount", "-o", "loop,umask=077", img, mnt}
	if out, err := exec.Command("modprobe", "vfat").CombinedOutput(); err != nil {
		t.Logf("no vfat in the kernel (%v: %s): using fusefat", err, out)
		cmd = []string{testtool.Path(t, "fusefat", "fusefat"), "-o", "rw+", img, mnt}
	}
	if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd[0], err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	pw, created, err := Ensure(mnt)
	if err != nil || !created {
		t.Fatalf("created %v, %v", created, err)
	}
	again, created, err := Ensure(mnt)
	if err != nil || created || again != pw {
		t.Fatalf("second call: created %v, same %v, %v", created, again == pw, err)
	}
	b, err := os.ReadFile(filepath.Join(mnt, FileName))
	if err != nil || string(b) != pw+"\n" {
		t.Fatalf("vfat holds %q, %v", b, err)
	}
}

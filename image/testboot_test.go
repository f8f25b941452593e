package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/presscap/presscap/image/internal/fat"
)

// gokrazyEdit changes a boot file the way gokrazy's update handlers do
// (facts from gokrazy's update.go, v0.0.0-20260418085648): it reads the file's
// recorded length at the extent gokrazy's FAT lookup finds, applies edit, pads
// a shorter result with spaces inserted before each LF, and writes the result
// from the file's first byte whatever its length; the directory entry keeps
// the old size, so whatever lands past it is lost.
func gokrazyEdit(t *testing.T, part, name string, edit func([]byte) []byte) {
	t.Helper()
	f, fs := openFAT(t, part, os.O_RDWR)
	defer f.Close()
	off, n, err := fs.GokrazyExtents(name)
	if err != nil {
		t.Fatalf("gokrazy's lookup of %s: %v", name, err)
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	rep := edit(b)
	if pad := len(b) - len(rep); pad > 0 {
		rep = bytes.ReplaceAll(rep, []byte{'\n'}, append(bytes.Repeat([]byte{' '}, pad), '\n'))
	}
	if _, err := f.WriteAt(rep, off); err != nil {
		t.Fatal(err)
	}
}

func openFAT(t *testing.T, path string, flag int) (*os.File, *fat.FS) {
	t.Helper()
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := fat.Open(f)
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	return f, fs
}

// The three edits of a test boot: /update/testboot, the old build's init
// taking the one-shot boot of the inactive root, and /update/switch (which
// the new build's guard would call once healthy).
var (
	rootArg      = regexp.MustCompile(`root=[^ ]+`)
	testbootEdit = func(b []byte) []byte {
		return bytes.ReplaceAll(b, []byte("\n"), []byte(" gokrazy.try_boot_inactive=1\n"))
	}
	takeTestboot = func(b []byte) []byte {
		return bytes.ReplaceAll(b, []byte("gokrazy.try_boot_inactive=1"), []byte("gokrazy.switch_on_boot=1"))
	}
	switchToRootB = func(b []byte) []byte {
		return rootArg.ReplaceAllFunc(b, func(r []byte) []byte { return bytes.Replace(r, []byte("PARTNROFF=1"), []byte("PARTNROFF=2"), 1) })
	}
)

// bootLine is the kernel command line the Pi firmware takes from
// cmdline.txt: its first line; the rest must be blank.
func bootLine(t *testing.T, c string) string {
	t.Helper()
	line, rest, ok := strings.Cut(c, "\n")
	if !ok {
		t.Fatalf("cmdline.txt has no newline (gokrazy's test boot would do nothing): %q", c)
	}
	if strings.TrimLeft(rest, " ") != "" {
		t.Fatalf("cmdline.txt has more than padding after its line: %q", rest)
	}
	return line
}

// loaderEntry reads a systemd-boot type #1 entry as systemd-boot does
// (src/boot/boot.c line_get_key_value): lines end at LF, CR or the end,
// leading and trailing blanks go, blank and # lines are skipped, the key ends
// at the first blank; options lines add up.
func loaderEntry(c string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.FieldsFunc(c, func(r rune) bool { return r == '\n' || r == '\r' }) {
		line = strings.Trim(line, " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v = strings.TrimLeft(v, " \t")
		if k == "options" && out[k] != "" {
			v = out[k] + " " + v
		}
		out[k] = v
	}
	return out
}

// checkTestboot runs gokrazy's test boot edits on the boot partition part
// and checks after each that the firmware (or systemd-boot) still boots the
// kernel with the arguments gokrazy's init looks for, with every file's
// length unchanged.
func checkTestboot(t *testing.T, part string, uefi bool) {
	t.Helper()
	// A copy: the caller's FAT reader stays on the image's own bytes.
	b, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	part = filepath.Join(t.TempDir(), "testboot.fat")
	if err := os.WriteFile(part, b, 0o644); err != nil {
		t.Fatal(err)
	}
	files := []string{"/cmdline.txt"}
	if uefi {
		files = append(files, "/loader/entries/gokrazy.conf")
	}
	read := func() (cmdline, entry string) {
		f, fs := openFAT(t, part, os.O_RDONLY)
		defer f.Close()
		c, err := fs.ReadFile("cmdline.txt")
		if err != nil {
			t.Fatal(err)
		}
		if uefi {
			e, err := fs.ReadFile("loader/entries/gokrazy.conf")
			if err != nil {
				t.Fatal(err)
			}
			entry = string(e)
		}
		return string(c), entry
	}
	c0, e0 := read()
	orig := bootLine(t, c0)
	step := func(name string, edit func([]byte) []byte, want, notWant []string) {
		t.Helper()
		for _, f := range files {
			gokrazyEdit(t, part, f, edit)
		}
		c, e := read()
		if len(c) != len(c0) || len(e) != len(e0) {
			t.Fatalf("%s: boot file lengths %d, %d; want %d, %d", name, len(c), len(e), len(c0), len(e0))
		}
		lines := map[string]string{"cmdline.txt": bootLine(t, c)}
		if uefi {
			le := loaderEntry(e)
			if le["linux"] != "/vmlinuz" || le["title"] != "gokrazy" {
				t.Fatalf("%s: systemd-boot would read linux %q, title %q from %q", name, le["linux"], le["title"], e)
			}
			lines["gokrazy.conf options"] = le["options"]
		}
		for what, line := range lines {
			args := strings.Fields(line)
			for _, w := range want {
				if !strings.Contains(line+" ", w) {
					t.Errorf("%s: %s lacks %q: %q", name, what, w, line)
				}
			}
			for _, w := range notWant {
				if strings.Contains(line, w) {
					t.Errorf("%s: %s still has %q: %q", name, what, w, line)
				}
			}
			// Every original argument survives (root= aside, which the
			// switch changes).
			for _, a := range strings.Fields(orig) {
				if !strings.HasPrefix(a, "root=") && !strings.Contains(" "+strings.Join(args, " ")+" ", " "+a+" ") {
					t.Errorf("%s: %s lost %q: %q", name, what, a, line)
				}
			}
		}
	}
	step("after /update/testboot", testbootEdit, []string{"gokrazy.try_boot_inactive=1"}, nil)
	step("after the old init took the test boot", takeTestboot, []string{"gokrazy.switch_on_boot=1"}, []string{"try_boot_inactive"})
	step("after /update/switch", switchToRootB, []string{"gokrazy.switch_on_boot=1", "/PARTNROFF=2 "}, []string{"PARTNROFF=1"})
	// The next update's test boot still has room.
	step("after a second /update/testboot", testbootEdit, []string{"gokrazy.try_boot_inactive=1", "gokrazy.switch_on_boot=1"}, []string{"PARTNROFF=1"})
}

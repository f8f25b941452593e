package rootfs

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/testtool"
)

func TestSquashfsTreeModesAndContent(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(dir, "host")
	if err := os.MkdirAll(filepath.Join(host, "kernel", "drivers"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(host, "kernel", "drivers", "x.ko"), []byte("module"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("presscap squashfs block "), 20000) // 480000 bytes: several blocks
	tr := NewTree()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tr.File("/gokrazy/init", big, ProgramMode))
	must(tr.File("/etc/hostname", []byte("presscap"), FileMode))
	must(tr.File("/etc/gokr-pw.txt", []byte("secret"), SecretMode))
	must(tr.Symlink("/etc/resolv.conf", "/tmp/resolv.conf"))
	must(tr.Dir("/perm"))
	must(tr.HostDir("/lib/modules/6.1", host))
	if err := tr.File("/etc/hostname", nil, FileMode); err == nil {
		t.Error("adding /etc/hostname twice succeeded")
	}
	if err := tr.File("etc/x", nil, FileMode); err == nil {
		t.Error("a relative path was accepted")
	}
	if err := tr.File("/etc/hostname/x", nil, FileMode); err == nil {
		t.Error("a file below a file was accepted")
	}

	img := filepath.Join(dir, "root.squashfs")
	size, err := tr.WriteSquashfs(img, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(img); err != nil || st.Size() != size {
		t.Fatalf("size %d, stat %v %v", size, st, err)
	}

	out, err := exec.Command(testtool.Path(t, "unsquashfs", "squashfs-tools"), "-s", img).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs -s: %v\n%s", err, out)
	}
	for _, want := range []string{"Compression gzip", "Block size 131072", "Number of ids 1"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("unsquashfs -s lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(string(out), "SQUASHFS 4:0 superblock") {
		t.Errorf("not squashfs 4.0:\n%s", out)
	}

	l, err := List(img)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"/":                                    "dr-xr-xr-x 0/0",
		"/gokrazy":                             "dr-xr-xr-x 0/0",
		"/gokrazy/init":                        "-rwxr-xr-x 0/0",
		"/etc/hostname":                        "-r--r--r-- 0/0",
		"/etc/gokr-pw.txt":                     "-r-------- 0/0",
		"/etc/resolv.conf":                     "lrwxrwxrwx 0/0 -> /tmp/resolv.conf",
		"/perm":                                "dr-xr-xr-x 0/0",
		"/lib/modules/6.1/kernel/drivers":      "dr-xr-xr-x 0/0",
		"/lib/modules/6.1/kernel/drivers/x.ko": "-r--r--r-- 0/0",
	}
	for p, w := range want {
		if l[p] != w {
			t.Errorf("%s: unsquashfs says %q, want %q", p, l[p], w)
		}
	}
	if len(l) != len(tr.Paths()) {
		t.Errorf("unsquashfs lists %d entries, the tree has %d: %v", len(l), len(tr.Paths()), l)
	}

	ext := filepath.Join(dir, "x")
	testtool.Removable(t, ext)
	if out, err := exec.Command(testtool.Path(t, "unsquashfs", "squashfs-tools"), "-no-xattrs", "-d", ext, img).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(ext, "gokrazy", "init"))
	if err != nil || !bytes.Equal(got, big) {
		t.Errorf("extracted /gokrazy/init: %d bytes, err %v; want %d bytes", len(got), err, len(big))
	}
	got, err = os.ReadFile(filepath.Join(ext, "lib/modules/6.1/kernel/drivers/x.ko"))
	if err != nil || string(got) != "module" {
		t.Errorf("extracted module: %q %v", got, err)
	}
}

// A tree that crosses every boundary of the format: several metadata
// blocks of inodes and listings, a directory with more entries than one
// listing header may carry, incompressible blocks, an empty file, an
// empty directory, a file of exactly one block.
func TestSquashfsBoundaries(t *testing.T) {
	tr := NewTree()
	want := map[string][]byte{}
	add := func(p string, data []byte, mode os.FileMode) {
		t.Helper()
		if err := tr.File(p, data, mode); err != nil {
			t.Fatal(err)
		}
		want[p] = data
	}
	for i := 0; i < 700; i++ {
		add(fmt.Sprintf("/many/file-%04d.txt", i), []byte(fmt.Sprintf("content of %d\n", i)), FileMode)
	}
	random := make([]byte, 3*BlockSize+1234)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	add("/data/random.bin", random, FileMode)
	add("/data/exact.bin", bytes.Repeat([]byte{7}, BlockSize), ProgramMode)
	add("/data/empty", nil, FileMode)
	add("/a/b/c/d/e/deep", []byte("deep"), SecretMode)
	if err := tr.Dir("/empty-dir"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "b.squashfs")
	if _, err := tr.WriteSquashfs(img, time.Unix(1700000000, 0)); err != nil {
		t.Fatal(err)
	}
	ext := filepath.Join(dir, "x")
	testtool.Removable(t, ext)
	if out, err := exec.Command(testtool.Path(t, "unsquashfs", "squashfs-tools"), "-no-xattrs", "-d", ext, img).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, out)
	}
	for p, w := range want {
		got, err := os.ReadFile(filepath.Join(ext, p))
		if err != nil || !bytes.Equal(got, w) {
			t.Errorf("%s: %d bytes, %v; want %d bytes", p, len(got), err, len(w))
		}
	}
	if st, err := os.Stat(filepath.Join(ext, "empty-dir")); err != nil || !st.IsDir() {
		t.Errorf("empty-dir: %v", err)
	}
	l, err := List(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != len(tr.Paths()) {
		t.Errorf("unsquashfs lists %d entries, the tree has %d", len(l), len(tr.Paths()))
	}
	if l["/a/b/c/d/e/deep"] != "-r-------- 0/0" || l["/data/exact.bin"] != "-rwxr-xr-x 0/0" {
		t.Errorf("modes: %q %q", l["/a/b/c/d/e/deep"], l["/data/exact.bin"])
	}
	// Same tree, same time: same bytes.
	img2 := filepath.Join(dir, "b2.squashfs")
	if _, err := tr.WriteSquashfs(img2, time.Unix(1700000000, 0)); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(img)
	b, _ := os.ReadFile(img2)
	if !bytes.Equal(a, b) {
		t.Error("two writes of the same tree differ")
	}
}

package rootfs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func unsquashfs(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("unsquashfs")
	if err != nil {
		t.Fatal("unsquashfs not found: install the Debian package squashfs-tools")
	}
	return p
}

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

	out, err := exec.Command(unsquashfs(t), "-s", img).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs -s: %v\n%s", err, out)
	}
	for _, want := range []string{"Filesystem is exportable", "Compression gzip", "Block size 131072"} {
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
	if out, err := exec.Command(unsquashfs(t), "-no-xattrs", "-d", ext, img).CombinedOutput(); err != nil {
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

package main

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/image/internal/assemble"
	"github.com/presscap/presscap/image/internal/fat"
	"github.com/presscap/presscap/image/internal/partition"
	"github.com/presscap/presscap/image/internal/rootfs"
	"github.com/presscap/presscap/image/internal/updater"
	"github.com/presscap/presscap/internal/disklabel"
	"github.com/presscap/presscap/internal/testing/testtool"
	probeconfig "github.com/presscap/presscap/probe/config"
)

// The structural tests build both instances once (compiling for arm64 is
// the slow part; the Go build cache makes the second build cheap) and then
// take the images apart with our readers and the reference tools.

// copyInstance copies an instance directory so the test's generated
// password stays out of the repository.
func copyInstance(t *testing.T, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join("..", "gokrazy", name)
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() || e.Name() == "gokr-pw.txt" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "config.json" {
			b = absoluteExtraFiles(t, b, src)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// absoluteExtraFiles rewrites ExtraFilePaths sources that point outside the
// instance directory (e.g. ../../probe/config/testdata/default.json) so
// the copy still finds them.
func absoluteExtraFiles(t *testing.T, config []byte, instDir string) []byte {
	t.Helper()
	var c map[string]any
	if err := json.Unmarshal(config, &c); err != nil {
		t.Fatal(err)
	}
	pcs, _ := c["PackageConfig"].(map[string]any)
	for _, pc := range pcs {
		efp, _ := pc.(map[string]any)["ExtraFilePaths"].(map[string]any)
		for dst, src := range efp {
			if s := src.(string); strings.HasPrefix(s, "..") {
				abs, err := filepath.Abs(filepath.Join(instDir, s))
				if err != nil {
					t.Fatal(err)
				}
				efp[dst] = abs
			}
		}
	}
	out, err := json.MarshalIndent(c, "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// probeConfigSource returns the host file an instance installs as the
// probe's /etc/presscap/config.json.
func probeConfigSource(t *testing.T, instDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(instDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		PackageConfig map[string]struct{ ExtraFilePaths map[string]string }
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	src := c.PackageConfig["github.com/presscap/presscap/probe"].ExtraFilePaths["/etc/presscap/config.json"]
	if src == "" {
		t.Fatal("the instance installs no /etc/presscap/config.json")
	}
	if !filepath.IsAbs(src) {
		src = filepath.Join(instDir, src)
	}
	return src
}

func workDir(t *testing.T, name string) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("..", "build", fmt.Sprintf("_test-%s-%d", name, os.Getpid())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// extract copies part of img to a new file, leaving zero MiBs as holes.
func extract(t *testing.T, img string, off, size int64) string {
	t.Helper()
	in, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	p := filepath.Join(t.TempDir(), fmt.Sprintf("part-%d", off))
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	buf := make([]byte, 1<<20)
	zero := make([]byte, 1<<20)
	for pos := int64(0); pos < size; pos += int64(len(buf)) {
		n := int64(len(buf))
		if size-pos < n {
			n = size - pos
		}
		if _, err := in.ReadAt(buf[:n], off+pos); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if bytes.Equal(buf[:n], zero[:n]) {
			continue
		}
		if _, err := out.WriteAt(buf[:n], pos); err != nil {
			t.Fatal(err)
		}
	}
	if err := out.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

type built struct {
	img, instance, password string
	ts                      time.Time
	out                     string
}

func build(t *testing.T, name string, extraArgs ...string) built {
	t.Helper()
	testtool.NotShort(t, "builds a whole image (half a minute warm) for Debian's checkers")
	inst := copyInstance(t, name)
	img := filepath.Join(t.TempDir(), name+".img")
	ts := time.Date(2026, 11, 27, 9, 30, 15, 0, time.UTC)
	var stdout, stderr bytes.Buffer
	args := append([]string{"build", "-instance", inst, "-o", img, "-timestamp", ts.Format(time.RFC3339),
		"-workdir", workDir(t, name)}, extraArgs...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := run(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("image build: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	pw, err := os.ReadFile(filepath.Join(inst, "gokr-pw.txt"))
	if err != nil {
		t.Fatalf("the update password was not generated: %v", err)
	}
	return built{img: img, instance: inst, password: strings.TrimSpace(string(pw)), ts: ts, out: stdout.String()}
}

func checkPartitions(t *testing.T, img, hostname, rootType string) *partition.Table {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if st.Size() != assemble.DefaultSize {
		t.Errorf("image is %d bytes, want %d", st.Size(), assemble.DefaultSize)
	}
	tab, err := partition.Read(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	sig := partition.Signature(hostname)
	mbr := make([]byte, 512)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		t.Fatal(err)
	}
	wantMBR := map[int][]byte{
		440: binary.LittleEndian.AppendUint32(nil, sig),
		446: {0x80, 0xFE, 0xFF, 0xFF, 0x0C, 0xFE, 0xFF, 0xFF, 0x00, 0x20, 0x00, 0x00, 0x00, 0x20, 0x03, 0x00},
		462: {0x00, 0xFE, 0xFF, 0xFF, 0xEE, 0xFE, 0xFF, 0xFF, 0x01, 0x00, 0x00, 0x00, 0xFF, 0x1F, 0x00, 0x00},
		510: {0x55, 0xAA},
	}
	for off, w := range wantMBR {
		if got := mbr[off : off+len(w)]; !bytes.Equal(got, w) {
			t.Errorf("MBR bytes %d.. = % x, want % x", off, got, w)
		}
	}
	last := uint64(st.Size()/512) - 34
	want := []struct {
		start, end uint64
		typ        string
	}{
		{8192, 8192 + 204800 - 1, partition.TypeEFISystem},
		{212992, 212992 + 1024000 - 1, rootType},
		{1236992, 1236992 + 1024000 - 1, partition.TypeLinuxData},
		{2260992, last, partition.TypeLinuxData},
	}
	if len(tab.Partitions) != 4 {
		t.Fatalf("%d partitions, want 4", len(tab.Partitions))
	}
	if !strings.EqualFold(tab.DiskGUID, fmt.Sprintf("60c24cc1-f3f9-427a-8199-%08x0000", sig)) {
		t.Errorf("disk GUID %s", tab.DiskGUID)
	}
	for i, w := range want {
		p := tab.Partitions[i]
		wantGUID := fmt.Sprintf("60c24cc1-f3f9-427a-8199-%08x%04x", sig, i+1)
		if p.Start != w.start || p.End != w.end || p.Type != w.typ || !strings.EqualFold(p.GUID, wantGUID) {
			t.Errorf("partition %d: %+v, want LBA %d..%d type %s GUID %s", i+1, p, w.start, w.end, w.typ, wantGUID)
		}
	}
	return tab
}

func openBoot(t *testing.T, img string, tab *partition.Table) (*fat.FS, string) {
	t.Helper()
	b := tab.Partitions[0]
	part := extract(t, img, b.Offset(), b.Size())
	out, err := exec.Command(testtool.Path(t, "fsck.fat", "dosfstools"), "-n", part).CombinedOutput()
	if err != nil {
		t.Fatalf("fsck.fat -n on the boot partition: %v\n%s", err, out)
	}
	f, err := os.Open(part)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fs, err := fat.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	return fs, part
}

func checkCmdline(t *testing.T, fs *fat.FS, hostname, console string) {
	t.Helper()
	sig := partition.Signature(hostname)
	want := fmt.Sprintf("console=tty1 console=%s root=PARTUUID=60c24cc1-f3f9-427a-8199-%08x0001/PARTNROFF=1 init=/gokrazy/init rootwait panic=10 oops=panic", console, sig) +
		"\n" + strings.Repeat(" ", assemble.CmdlinePadding)
	got, err := fs.ReadFile("cmdline.txt")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("cmdline.txt = %q\nwant          %q", got, want)
	}
	o1, n1, err := fs.Extents("/cmdline.txt")
	if err != nil {
		t.Fatal(err)
	}
	o2, n2, err := fs.GokrazyExtents("/cmdline.txt")
	if err != nil || o1 != o2 || n1 != n2 {
		t.Errorf("gokrazy's lookup of cmdline.txt: %d,%d,%v; want %d,%d", o2, n2, err, o1, n1)
	}
}

func checkRoot(t *testing.T, b built, tab *partition.Table, hostname, kernelRel string, machine elf.Machine, wantModules bool) string {
	img := b.img
	t.Helper()
	p, err := updater.OpenImage(img)
	if err != nil {
		t.Fatal(err)
	}
	rootSize := p.RootSize
	p.Close()
	sq := extract(t, img, tab.Partitions[1].Offset(), rootSize)
	out, err := exec.Command(testtool.Path(t, "unsquashfs", "squashfs-tools"), "-s", sq).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs -s: %v\n%s", err, out)
	}
	for _, w := range []string{"SQUASHFS 4:0", "Compression gzip", "Block size 131072"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("root squashfs: unsquashfs -s lacks %q:\n%s", w, out)
		}
	}
	l, err := rootfs.List(sq)
	if err != nil {
		t.Fatal(err)
	}
	const dir, file, prog, secret = "dr-xr-xr-x 0/0", "-r--r--r-- 0/0", "-rwxr-xr-x 0/0", "-r-------- 0/0"
	want := map[string]string{
		"/": dir, "/gokrazy": dir, "/user": dir, "/etc": dir,
		"/gokrazy/init": prog, "/gokrazy/dhcp": prog, "/gokrazy/ntp": prog, "/gokrazy/randomd": prog, "/gokrazy/heartbeat": prog,
		"/user/probe":   prog,
		"/etc/hostname": file, "/etc/hosts": file, "/etc/gokr-pw.txt": secret, "/etc/http-port.txt": file,
		"/etc/https-port.txt": file, "/etc/localtime": file, "/etc/ssl/ca-bundle.pem": file,
		"/etc/presscap/config.json": file,
		"/etc/resolv.conf":          "lrwxrwxrwx 0/0 -> /tmp/resolv.conf",
		"/var":                      "lrwxrwxrwx 0/0 -> /perm/var",
		"/lib/modules/" + kernelRel: dir,
		"/dev":                      dir, "/proc": dir, "/sys": dir, "/tmp": dir, "/perm": dir, "/run": dir, "/mnt": dir,
	}
	// The probe's storage mount point exists in the read-only root.
	src := probeConfigSource(t, b.instance)
	pc, err := probeconfig.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	want[pc.Storage.MountPoint] = dir
	// With Update.UseTLS the instance's web certificate is where gokrazy
	// loads it at boot; without, gokrazy serves plain HTTP.
	cert, certErr := os.ReadFile(filepath.Join(b.instance, "state", "web-cert.pem"))
	if certErr == nil {
		want["/etc/ssl/gokrazy-web.pem"] = file
		want["/etc/ssl/gokrazy-web.key.pem"] = secret
	} else if l["/etc/ssl/gokrazy-web.pem"] != "" {
		t.Errorf("root has /etc/ssl/gokrazy-web.pem, but the instance has no certificate (%v)", certErr)
	}
	for p, w := range want {
		if l[p] != w {
			t.Errorf("root %s: %q, want %q", p, l[p], w)
		}
	}
	for p, v := range l {
		if strings.HasPrefix(v, "d") && v != dir {
			t.Errorf("root %s: directory %q, want %q", p, v, dir)
		}
		if strings.HasPrefix(v, "-") && v != file && v != prog && v != secret {
			t.Errorf("root %s: file %q", p, v)
		}
	}
	if l["/lib/modules/"+kernelRel+"/modules.builtin"] != file {
		t.Errorf("/lib/modules/%s/modules.builtin missing", kernelRel)
	}
	if wantModules {
		mods := 0
		for p := range l {
			if strings.HasSuffix(p, ".ko") && strings.HasPrefix(p, "/lib/modules/"+kernelRel+"/") {
				mods++
			}
		}
		if mods == 0 {
			t.Errorf("no kernel modules under /lib/modules/%s", kernelRel)
		}
	}
	ext := filepath.Join(t.TempDir(), "root")
	testtool.Removable(t, ext)
	if out, err := exec.Command(testtool.Path(t, "unsquashfs", "squashfs-tools"), "-no-xattrs", "-d", ext, sq).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, out)
	}
	shipped, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(ext, "etc/presscap/config.json")); err != nil || !bytes.Equal(got, shipped) {
		t.Errorf("/etc/presscap/config.json differs from %s (%v)", src, err)
	}
	if certErr == nil {
		if got, err := os.ReadFile(filepath.Join(ext, "etc/ssl/gokrazy-web.pem")); err != nil || !bytes.Equal(got, cert) {
			t.Errorf("/etc/ssl/gokrazy-web.pem differs from the instance's state/web-cert.pem (%v)", err)
		}
	}
	for p, w := range map[string]string{"etc/hostname": hostname, "etc/http-port.txt": "80", "etc/https-port.txt": "443"} {
		if b, err := os.ReadFile(filepath.Join(ext, p)); err != nil || string(b) != w {
			t.Errorf("/%s = %q (%v), want %q", p, b, err, w)
		}
	}
	for _, p := range []string{"gokrazy/init", "gokrazy/dhcp", "user/probe"} {
		f, err := elf.Open(filepath.Join(ext, p))
		if err != nil {
			t.Errorf("/%s: %v", p, err)
			continue
		}
		if f.Machine != machine {
			t.Errorf("/%s is for %v, want %v", p, f.Machine, machine)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Errorf("/%s is dynamically linked", p)
			}
		}
		f.Close()
	}
	init, err := os.ReadFile(filepath.Join(ext, "gokrazy/init"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(init, []byte("2026-11-27T09:30:15Z")) {
		t.Error("/gokrazy/init does not carry the build timestamp")
	}
	return ext
}

func checkPerm(t *testing.T, img string, tab *partition.Table) {
	t.Helper()
	p := tab.Partitions[3]
	part := extract(t, img, p.Offset(), p.Size())
	out, err := exec.Command(testtool.Path(t, "e2fsck", "e2fsprogs"), "-n", "-f", part).CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck -n -f on /perm: %v\n%s", err, out)
	}
	out, err = exec.Command(testtool.Path(t, "dumpe2fs", "e2fsprogs"), "-h", part).CombinedOutput()
	if err != nil {
		t.Fatalf("dumpe2fs: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Filesystem volume name:   perm") {
		t.Errorf("/perm label:\n%s", out)
	}
}

func TestPiImageStructure(t *testing.T) {
	b := build(t, "presscap")
	if len(b.password) < 20 {
		t.Errorf("generated password %q is too short", b.password)
	}
	tab := checkPartitions(t, b.img, "presscap", partition.TypeRootARM64)
	fs, part := openBoot(t, b.img, tab)
	checkCmdline(t, fs, "presscap", "serial0,115200")
	checkTestboot(t, part, false)
	checkEEPROM(t, fs, part)
	ct, err := fs.ReadFile("config.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"arm_control=0x200\n", "enable_uart=1\n", "kernel=vmlinuz\n"} {
		if !strings.Contains(string(ct), w) {
			t.Errorf("config.txt lacks %q:\n%s", w, ct)
		}
	}
	if strings.Contains(string(ct), "enable_uart=0") {
		t.Errorf("config.txt keeps enable_uart=0 although a serial console is configured")
	}
	// Firmware for every Pi, device trees for Pi 3, 4, 5 and Zero 2 W.
	for _, p := range []string{"vmlinuz", "bootcode.bin", "start.elf", "fixup.dat", "start4.elf", "fixup4.dat",
		"bcm2710-rpi-3-b.dtb", "bcm2710-rpi-3-b-plus.dtb", "bcm2711-rpi-4-b.dtb", "bcm2712-rpi-5-b.dtb",
		"bcm2710-rpi-zero-2-w.dtb", "overlays/act-led.dtbo"} {
		st, err := fs.Stat(p)
		if err != nil {
			t.Errorf("boot: %v", err)
			continue
		}
		if st.Size == 0 {
			t.Errorf("boot: %s is empty", p)
		}
		if _, _, err := fs.Extents(p); err != nil {
			t.Errorf("boot: %s: %v", p, err)
		}
	}
	if _, err := fs.Stat("EFI/BOOT/BOOTAA64.EFI"); err == nil {
		t.Error("the Pi image carries an EFI loader")
	}
	checkRoot(t, b, tab, "presscap", "6.12.47-v8", elf.EM_AARCH64, true)
	checkPerm(t, b.img, tab)

	// info reads back what build wrote.
	var out bytes.Buffer
	if err := run(context.Background(), []string{"info", "-image", b.img}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"build 2026-11-27T09:30:15Z\n", "file /pieeprom.upd 524288 bytes\n", "file /recovery.bin ",
		"file /vl805.sig 65 bytes\n", "EEPROM update pieeprom "} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("info lacks %q:\n%s", w, out.String())
		}
	}
	checkUpdateEEPROM(t, b, fs)
	checkUpdateFromHTTP(t, b)
	checkUpdatePasswordFile(t, b)
	checkRelease(t, b)
}

// standInLoader writes a file that passes for an EFI executable of the
// given PE machine type: the loader's code does not matter for the
// structure; the system tests boot the real systemd-boot.
func standInLoader(t *testing.T, machine uint16) string {
	t.Helper()
	b := make([]byte, 0x80)
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x40)
	copy(b[0x40:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(b[0x44:], machine)
	p := filepath.Join(t.TempDir(), fmt.Sprintf("loader-%04x.efi", machine))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkUEFIImage checks an instance without Raspberry Pi firmware: the
// root type and programs of its architecture, systemd-boot as the
// removable-media loader, one loader entry carrying the command line.
func checkUEFIImage(t *testing.T, name, loaderPath, console string, rootType string, machine elf.Machine) {
	loaderBytes, err := os.ReadFile(loaderPath)
	if err != nil {
		t.Fatal(err)
	}
	removable := "EFI/BOOT/BOOTAA64.EFI"
	if machine == elf.EM_X86_64 {
		removable = "EFI/BOOT/BOOTX64.EFI"
	}
	b := build(t, name, "-systemd-boot", loaderPath)
	tab := checkPartitions(t, b.img, name, rootType)
	fs, part := openBoot(t, b.img, tab)
	checkCmdline(t, fs, name, console)
	checkTestboot(t, part, true)
	checkNoEEPROM(t, fs)
	got, err := fs.ReadFile(removable)
	if err != nil || !bytes.Equal(got, loaderBytes) {
		t.Errorf("%s: %q %v, want the loader", removable, got, err)
	}
	entry, err := fs.ReadFile("loader/entries/gokrazy.conf")
	if err != nil {
		t.Fatal(err)
	}
	cmd, _ := fs.ReadFile("cmdline.txt")
	if want := "title gokrazy\rlinux /vmlinuz\roptions " + string(cmd); string(entry) != want {
		t.Errorf("gokrazy.conf = %q, want %q", entry, want)
	}
	// The update's root switch rewrites this file through gokrazy's reader.
	o1, n1, _ := fs.Extents("/loader/entries/gokrazy.conf")
	o2, n2, err := fs.GokrazyExtents("/loader/entries/gokrazy.conf")
	if err != nil || o1 != o2 || n1 != n2 {
		t.Errorf("gokrazy's lookup of gokrazy.conf: %d,%d,%v; want %d,%d", o2, n2, err, o1, n1)
	}
	if _, err := fs.Stat("config.txt"); err == nil {
		t.Error("the UEFI image carries a Raspberry Pi config.txt")
	}
	// The VM instances serve their web interface over HTTPS (the system
	// tests update through it).
	if _, err := os.Stat(filepath.Join(b.instance, "state", "web-cert.pem")); err != nil {
		t.Errorf("the VM instance's build made no self-signed certificate: %v", err)
	}
	checkRoot(t, b, tab, name, "7.1.3", machine, false)
}

func TestVMImageStructure(t *testing.T) {
	checkUEFIImage(t, "presscap-vm", standInLoader(t, 0xaa64), "ttyAMA0,115200", partition.TypeRootARM64, elf.EM_AARCH64)
}

// TestX86ImageStructure: the VM edition's instance is amd64 throughout
// (programs, root partition type, the loader's path and machine).
func TestX86ImageStructure(t *testing.T) {
	checkUEFIImage(t, "presscap-x86", standInLoader(t, 0x8664), "ttyS0,115200", partition.TypeRootAMD64, elf.EM_X86_64)
}

// TestUEFILoaderArchitecture: a loader for the other architecture fails
// the build, naming the file to use, instead of an image whose firmware
// stops at its boot menu.
func TestUEFILoaderArchitecture(t *testing.T) {
	inst := copyInstance(t, "presscap-x86")
	img := filepath.Join(t.TempDir(), "x86.img")
	err := run(context.Background(), []string{"build", "-instance", inst, "-o", img, "-workdir", workDir(t, "wrongloader"),
		"-systemd-boot", standInLoader(t, 0xaa64)}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "0xaa64") || !strings.Contains(err.Error(), "systemd-bootx64.efi") {
		t.Errorf("build with an arm64 loader for an amd64 instance: %v, want an error naming both machines and systemd-bootx64.efi", err)
	}
	if _, err := os.Stat(img); err == nil {
		t.Error("an image was written with the wrong loader")
	}
}

func TestBadProbeConfigFailsTheBuild(t *testing.T) {
	// The VM instance ships its own probe.json; the config is checked
	// before anything else (even before the UEFI loader is looked for).
	inst := copyInstance(t, "presscap-vm")
	if err := os.WriteFile(filepath.Join(inst, "probe.json"), []byte(`{"links": [], "trigger": {"before": "-5s"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "bad.img")
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"build", "-instance", inst, "-o", img, "-workdir", workDir(t, "bad")}, &stdout, io.Discard)
	if err == nil {
		t.Fatal("a probe config without links was accepted")
	}
	if !strings.Contains(err.Error(), "links") || !strings.Contains(err.Error(), "/etc/presscap/config.json") {
		t.Errorf("error %q does not name the field and the file", err)
	}
	if _, err := os.Stat(img); err == nil {
		t.Error("an image was written despite the bad config")
	}
	if strings.Contains(stdout.String(), "go build") {
		t.Error("programs were compiled before the config was checked")
	}
	// What the device would only warn about also fails the build.
	if err := os.WriteFile(filepath.Join(inst, "probe.json"), []byte(`{"trigger": {"rescan": "10ms"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), []string{"build", "-instance", inst, "-o", img, "-workdir", workDir(t, "bad")}, &stdout, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "trigger.rescan") {
		t.Errorf("a probe config the device would correct: %v, want the build refused naming trigger.rescan", err)
	}

	// Inline mode over the port the instance's DHCP client runs on (eth0,
	// its default) would leave the probe without an address.
	if err := os.WriteFile(filepath.Join(inst, "probe.json"), []byte(`{"network": {"mode": "inline", "ports": [{"interface": "eth0"}, {"interface": "eth1"}]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), []string{"build", "-instance", inst, "-o", img, "-workdir", workDir(t, "bad")}, &stdout, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `network.ports[0].interface: "eth0" is where the image's DHCP client runs`) || !strings.Contains(err.Error(), "cmd/dhcp") {
		t.Errorf("inline mode over the DHCP client's eth0: %v, want the build refused naming network.ports[0].interface and the DHCP flags", err)
	}

	// A broken instance config names the field too.
	if err := os.WriteFile(filepath.Join(inst, "config.json"), []byte(`{"Hostname": "presscap", "Packages": [], "Pakages": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), []string{"build", "-instance", inst, "-o", img}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "Pakages") {
		t.Errorf("unknown field: err = %v", err)
	}
}

// TestRingDisk: make vm's second disk is one ext4 partition from 1 MiB,
// labelled as the instance's probe configuration looks for it, which the
// probe's own label reader finds.
func TestRingDisk(t *testing.T) {
	inst := copyInstance(t, "presscap-x86")
	img := filepath.Join(t.TempDir(), "ring.img")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"ringdisk", "-instance", inst, "-o", img, "-size", "64M"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(img); err != nil || st.Size() != 64<<20 {
		t.Fatalf("ring disk: %v %v, want 64 MiB", st, err)
	}
	dump, err := exec.Command(testtool.Path(t, "sfdisk", "fdisk"), "--json", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	var pt struct {
		PartitionTable struct {
			Label      string `json:"label"`
			Partitions []struct {
				Start, Size uint64
				Type        string
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(dump, &pt); err != nil {
		t.Fatalf("%v\n%s", err, dump)
	}
	if p := pt.PartitionTable.Partitions; pt.PartitionTable.Label != "dos" || len(p) != 1 || p[0].Start != 2048 || p[0].Size != 64<<11-2048 || p[0].Type != "83" {
		t.Errorf("sfdisk reads %s", dump)
	}
	part := extract(t, img, 2048*512, 64<<20-2048*512)
	if o, err := exec.Command(testtool.Path(t, "e2fsck", "e2fsprogs"), "-n", "-f", part).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -n -f: %v\n%s", err, o)
	}
	f, err := os.Open(part)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sb := make([]byte, 4096)
	if _, err := f.ReadAt(sb, 0); err != nil {
		t.Fatal(err)
	}
	if label, fstype, err := disklabel.Parse(sb); label != "PRESSCAP" || fstype != "ext4" || err != nil {
		t.Errorf("the probe reads label %q type %q (%v), want PRESSCAP ext4", label, fstype, err)
	}
}

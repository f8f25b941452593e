//go:build systemtest

package systemtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/image/internal/fat"
	"github.com/presscap/presscap/image/internal/gokconfig"
	"github.com/presscap/presscap/image/internal/partition"
	"github.com/presscap/presscap/image/internal/tlspin"
	"github.com/presscap/presscap/image/internal/updater"
	"github.com/presscap/presscap/internal/testing/testtool"
)

const repo = "../.."

// platform is what differs between the arm64 QEMU virt VM and the x86-64
// VM edition: the instance, QEMU, its firmware, the loader the image
// carries, and how the ring disk is attached.
type platform struct {
	instance         string // gokrazy/<instance>, also the host name
	qemu, qemuPkg    string
	firmware, fwPkg  string
	machine          []string
	sdboot, sdbootMk string // loader relative to the repository; the make target fetching it
	// ringDevice attaches drive "ring" (the arm64 VM: a USB disk, as on
	// the Pi; the VM edition: the VM's second disk).
	ringDevice []string
}

var arm64Virt = platform{
	instance: "presscap-vm",
	qemu:     "qemu-system-aarch64", qemuPkg: "qemu-system-arm",
	firmware: "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd", fwPkg: "qemu-efi-aarch64",
	machine: []string{"-machine", "virt", "-cpu", "cortex-a72"},
	sdboot:  "build/systemd-boot/usr/lib/systemd/boot/efi/systemd-bootaa64.efi", sdbootMk: "make systemtest",
	ringDevice: []string{"-device", "usb-storage,bus=xhci.0,drive=ring"},
}

// vm is one QEMU instance booting a disk image.
type vm struct {
	cmd    *exec.Cmd
	serial string
	// monitor is the QEMU monitor's Unix socket.
	monitor string
	// port reaches the guest's port 80 (gokrazy's HTTP port, which
	// redirects to HTTPS), httpsPort its port 443 (web UI and updates).
	port, httpsPort int
	// web is a client that trusts exactly the instance's self-signed web
	// certificate (an oracle independent of the update tool's pinning).
	web *http.Client
	// started is when QEMU was started: boot times count from it.
	started time.Time
	done    chan struct{} // closed when QEMU has exited; then err is set
	err     error
	// pwFile holds the device's own password for make update's
	// -password-file (see seedDevicePassword).
	pwFile string
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// webClient trusts the certificate the build made for inst, under the
// instance's host name, whatever address it is reached at.
func webClient(t testing.TB, inst, hostname string) *http.Client {
	t.Helper()
	cert, err := os.ReadFile(filepath.Join(inst, gokconfig.StateDir, gokconfig.SelfSignedCertFile))
	if err != nil {
		t.Fatalf("the VM instance has no self-signed web certificate (Update.UseTLS): %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cert) {
		t.Fatalf("%s: no certificate", inst)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: hostname}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// startVM boots disk on the arm64 virt machine, built from inst. fwds are
// extra user-network forwards ("hostfwd=...", "guestfwd=..."), extra more
// QEMU arguments.
func startVM(t testing.TB, inst, disk, ring, dir string, fwds, extra []string) *vm {
	return startVMOn(t, arm64Virt, inst, disk, ring, dir, fwds, extra)
}

// diskFormat is QEMU's name for the format of a disk image file.
func diskFormat(path string) string {
	if strings.HasSuffix(path, ".qcow2") {
		return "qcow2"
	}
	return "raw"
}

// startVMOn boots disk on platform p with the ring disk, the presenter
// stand-in (usb-kbd on xHCI), the management NIC on user networking and
// the monitor on dir/monitor.sock.
func startVMOn(t testing.TB, p platform, inst, disk, ring, dir string, fwds, extra []string) *vm {
	t.Helper()
	q := testtool.Path(t, p.qemu, p.qemuPkg)
	if _, err := os.Stat(p.firmware); err != nil {
		t.Fatalf("%s: install the Debian package %s", p.firmware, p.fwPkg)
	}
	v := &vm{serial: filepath.Join(dir, "serial.log"), monitor: filepath.Join(dir, "monitor.sock"), port: freePort(t), httpsPort: freePort(t),
		web: webClient(t, inst, p.instance), done: make(chan struct{})}
	args := append(append([]string(nil), p.machine...),
		"-smp", "2", "-m", "1024",
		"-bios", p.firmware,
		"-drive", "file="+disk+",if=none,format="+diskFormat(disk)+",id=root", "-device", "virtio-blk-pci,drive=root",
		"-device", "qemu-xhci,id=xhci", "-device", "usb-kbd,bus=xhci.0",
		"-drive", "file="+ring+",if=none,format="+diskFormat(ring)+",id=ring")
	args = append(args, p.ringDevice...)
	args = append(args,
		// restrict=on: the guest reaches nothing but the explicit forwards.
		"-netdev", strings.Join(append([]string{fmt.Sprintf("user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:%d-:80,hostfwd=tcp:127.0.0.1:%d-:443", v.port, v.httpsPort)}, fwds...), ","),
		"-device", "virtio-net-pci,netdev=net0,romfile=",
		"-monitor", "unix:"+v.monitor+",server,nowait",
		"-serial", "file:"+v.serial, "-display", "none",
	)
	args = append(args, extra...)
	v.cmd = exec.Command(q, args...)
	var stderr bytes.Buffer
	v.cmd.Stderr = &stderr
	if err := v.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	v.started = time.Now()
	go func() {
		err := v.cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%v: %s", err, stderr.String())
		}
		v.err = err
		close(v.done)
	}()
	t.Cleanup(func() {
		select {
		case <-v.done:
		default:
			v.cmd.Process.Kill()
			<-v.done
		}
	})
	return v
}

func (v *vm) serialLog(t testing.TB) string {
	b, _ := os.ReadFile(v.serial)
	return string(b)
}

func (v *vm) target(pw string) *updater.Target {
	return &updater.Target{BaseURL: v.webURL(""), Password: pw, Client: v.web}
}

func (v *vm) webURL(path string) string {
	return fmt.Sprintf("https://127.0.0.1:%d%s", v.httpsPort, path)
}

// waitUp polls the web UI until it answers with build, or fails.
func (v *vm) waitUp(t testing.TB, pw, build string, timeout time.Duration) (updater.Status, time.Duration) {
	t.Helper()
	start := time.Now()
	tg := v.target(pw)
	var last error
	for time.Since(start) < timeout {
		select {
		case <-v.done:
			t.Fatalf("QEMU exited: %v\nserial:\n%s", v.err, tail(v.serialLog(t), 3000))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := tg.GetStatus(ctx)
		cancel()
		if err == nil && s.BuildTimestamp == build {
			return s, time.Since(v.started)
		}
		if err == nil {
			last = fmt.Errorf("build %s", s.BuildTimestamp)
		} else {
			last = err
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("web UI did not report build %s within %s (last: %v)\nserial:\n%s", build, timeout, last, tail(v.serialLog(t), 4000))
	return updater.Status{}, 0
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// setup makes the test's temporary directory, an image build directory
// under build/ (name plus pid, removed at cleanup), the image tool and a
// copy of the presscap-vm instance.
func setup(t *testing.T, name string) (dir, workdir, tool, inst string) {
	t.Helper()
	dir = t.TempDir()
	workdir, err := filepath.Abs(filepath.Join(repo, "build", fmt.Sprintf("%s-%d", name, os.Getpid())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(workdir) })
	return dir, workdir, imageTool(t, dir), copyInstance(t, dir, arm64Virt.instance)
}

// password is the gokrazy password the image tool generated for inst.
func password(t testing.TB, inst string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(inst, "gokr-pw.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// pushUpdate runs make update's command: image to the VM over HTTPS,
// waiting until it runs the new build.
func pushUpdate(tool, inst, image string, v *vm) ([]byte, error) {
	return pushUpdateTo(tool, inst, image, v.webURL(""), v)
}

// pushUpdateTo is pushUpdate to another URL of the VM's web UI (a tunnel).
func pushUpdateTo(tool, inst, image, target string, v *vm) ([]byte, error) {
	args := []string{"update", "-instance", inst, "-image", image, "-target", target, "-wait", "5m"}
	if v.pwFile != "" {
		args = append(args, "-password-file", v.pwFile)
	}
	return exec.Command(tool, args...).CombinedOutput()
}

func imageTool(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "imagetool")
	cmd := exec.Command("go", "build", "-o", bin, "./image")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./image: %v\n%s", err, out)
	}
	return bin
}

func buildImage(t testing.TB, tool, inst, out, workdir string, ts time.Time) time.Duration {
	return buildImageFor(t, arm64Virt, tool, inst, out, workdir, ts)
}

func buildImageFor(t testing.TB, p platform, tool, inst, out, workdir string, ts time.Time) time.Duration {
	t.Helper()
	sdboot, err := filepath.Abs(filepath.Join(repo, p.sdboot))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sdboot); err != nil {
		t.Fatalf("%v: run %s (it fetches Debian's systemd-boot-efi)", err, p.sdbootMk)
	}
	start := time.Now()
	cmd := exec.Command(tool, "build", "-instance", inst, "-o", out, "-workdir", workdir,
		"-timestamp", ts.Format(time.RFC3339), "-systemd-boot", sdboot)
	cmd.Dir = repo
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("image build: %v\n%s", err, o)
	}
	return time.Since(start)
}

func copyInstance(t testing.TB, dir, name string) string {
	t.Helper()
	dst := filepath.Join(dir, name)
	if _, err := os.Stat(dst); err == nil {
		return dst
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.json", "probe.json"} {
		b, err := os.ReadFile(filepath.Join(repo, "gokrazy", name, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func bootFile(t *testing.T, disk, name string) string {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fs, err := fat.Open(io.NewSectionReader(f, partition.BootStart*partition.SectorSize, partition.BootSectors*partition.SectorSize))
	if err != nil {
		t.Fatal(err)
	}
	b, err := fs.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// extractPerm copies /perm out of the disk so e2fsprogs can read it.
func extractPerm(t *testing.T, disk, dir string) string {
	t.Helper()
	st, err := os.Stat(disk)
	if err != nil {
		t.Fatal(err)
	}
	l, err := partition.NewLayout(0, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	p := l.Partition(partition.Perm)
	out := filepath.Join(dir, "perm.ext4")
	cmd := exec.Command("dd", "if="+disk, "of="+out, "bs=1M", "conv=sparse",
		"iflag=skip_bytes,count_bytes", "skip="+strconv.FormatInt(p.Offset(), 10), "count="+strconv.FormatInt(p.Size(), 10))
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dd: %v\n%s", err, o)
	}
	return out
}

// seedDevicePassword puts a per-device password into disk's /perm before
// the first boot, as the probe makes one on its first start (probe/internal/devicepw
// keeps an existing one): gokrazy reads /perm/gokr-pw.txt before the
// image's, so the web UI and make update need it, as they need the one a
// probe made itself (which a provider reads from its health report). It
// returns the password and a file holding it.
func seedDevicePassword(t *testing.T, disk, dir string) (password, file string) {
	t.Helper()
	pw := "systemtest-device-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	file = filepath.Join(dir, "device-pw.txt")
	if err := os.WriteFile(file, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	perm := extractPerm(t, disk, dir)
	cmd := exec.Command(testtool.Path(t, "debugfs", "e2fsprogs"), "-w", "-R", "write "+file+" gokr-pw.txt", perm)
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("debugfs write gokr-pw.txt: %v\n%s", err, o)
	}
	// Write back only what debugfs changed: the disk file stays sparse.
	st, err := os.Stat(disk)
	if err != nil {
		t.Fatal(err)
	}
	l, err := partition.NewLayout(0, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	off := l.Partition(partition.Perm).Offset()
	src, err := os.Open(perm)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	a, b := make([]byte, 1<<20), make([]byte, 1<<20)
	changed := 0
	for pos := int64(0); ; pos += int64(len(a)) {
		n, err := src.ReadAt(a, pos)
		if n == 0 {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
		if _, err := dst.ReadAt(b[:n], off+pos); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a[:n], b[:n]) {
			if _, err := dst.WriteAt(a[:n], off+pos); err != nil {
				t.Fatal(err)
			}
			changed++
		}
	}
	if changed == 0 {
		t.Fatal("debugfs changed nothing in /perm")
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return pw, file
}

// TestBootAndUpdate boots a fresh image whose probe reports to OpenSSH on
// the host, follows its first boot to its own password (see
// checkFleetFirstBoot: the server's configuration changes its exports on
// the way), then pushes a second build with make update's command and the
// password the provider's tool read from the report.
func TestBootAndUpdate(t *testing.T) {
	dir, workdir, tool, inst := setup(t, "_systemtest")
	e := setupE2E(t, dir, inst)
	allowPasswordReboot(t, inst)

	// Build A, boot it.
	tsA := time.Now().UTC().Truncate(time.Second)
	diskA := filepath.Join(dir, "a.img")
	buildDur := buildImage(t, tool, inst, diskA, workdir, tsA)
	imagePW := password(t, inst)
	st, _ := os.Stat(diskA)
	var used int64
	if out, err := exec.Command("du", "-B1", diskA).Output(); err == nil {
		used, _ = strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	}
	t.Logf("bench: image build (warm Go cache) %.1f s; image %d MiB, %d MiB allocated (sparse)", buildDur.Seconds(), st.Size()>>20, used>>20)

	nic := newCaptureNIC(t)
	statusPort := freePort(t)
	ring := ringDisk(t, dir)
	v := startVM(t, inst, diskA, ring, dir, e.guestNet(statusPort), nic.args)
	gen := startGenerator(t, nic.host, nic.qemuAddr, 40)
	status, bootDur := v.waitUp(t, imagePW, tsA.Format(time.RFC3339), 5*time.Minute)
	t.Logf("bench: QEMU start to web UI %.1f s (TCG, cortex-a72)", bootDur.Seconds())
	if status.Hostname != "presscap-vm" {
		t.Errorf("hostname %q", status.Hostname)
	}
	// The web UI requires the password.
	if _, err := v.target("wrong").GetStatus(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("GET / with a wrong password: %v", err)
	}
	// With Update.UseTLS gokrazy's HTTP port only redirects to HTTPS:
	// nothing, the password included, is served in clear.
	noFollow := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	plain, err := noFollow.Get(fmt.Sprintf("http://127.0.0.1:%d/", v.port))
	if err != nil {
		t.Fatalf("HTTP port: %v", err)
	}
	plain.Body.Close()
	if loc := plain.Header.Get("Location"); plain.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "https://") {
		t.Errorf("HTTP port answers %s, Location %q; want a redirect to https", plain.Status, loc)
	}
	// Every service the instance names is supervised.
	req, _ := http.NewRequest("GET", v.webURL("/"), nil)
	req.SetBasicAuth("gokrazy", imagePW)
	req.Header.Set("Accept", "application/json")
	resp, err := v.web.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, p := range []string{"/gokrazy/dhcp", "/gokrazy/ntp", "/gokrazy/randomd", "/gokrazy/heartbeat", "/user/probe", `"PermDev":"/dev/vda4"`} {
		if !bytes.Contains(body, []byte(p)) {
			t.Errorf("status lacks %s: %s", p, body)
		}
	}

	// The device's own password, the server's configuration, the reboot.
	fleetStart := time.Now()
	id, pw := e.checkFleetFirstBoot(t, v, gen, statusPort, imagePW, tsA.Format(time.RFC3339))
	t.Logf("bench: first boot's fleet steps (two presses, a restart, the password's reboot) %.1f s", time.Since(fleetStart).Seconds())
	v.pwFile = e.fleetPasswordFile(t, dir, id)
	log1 := v.serialLog(t)
	if !strings.Contains(log1, "Mounted root (squashfs filesystem) readonly on device 254:2") {
		t.Errorf("first boot did not mount root from partition 2:\n%s", tail(log1, 3000))
	}

	// Build B (a later timestamp) and push it with make update's command.
	tsB := tsA.Add(time.Minute)
	diskB := filepath.Join(dir, "b.img")
	buildImage(t, tool, inst, diskB, workdir, tsB)
	updStart := time.Now()
	out, err := pushUpdate(tool, inst, diskB, v)
	if err != nil {
		t.Fatalf("image update: %v\n%s\nserial:\n%s", err, out, tail(v.serialLog(t), 4000))
	}
	t.Logf("update:\n%s", out)
	t.Logf("bench: update (root + boot + switch + reboot + back up) %.1f s", time.Since(updStart).Seconds())
	if !strings.Contains(string(out), "/update/root:") || !strings.Contains(string(out), "digest verified") {
		t.Errorf("update output lacks the verified root transfer:\n%s", out)
	}
	checkPinned(t, tool, inst, diskB, v, string(out))
	s2, _ := v.waitUp(t, pw, tsB.Format(time.RFC3339), time.Minute)
	if s2.BuildTimestamp != tsB.Format(time.RFC3339) {
		t.Errorf("after the update the device runs %s", s2.BuildTimestamp)
	}
	// The update kept the device's password: the image's stays refused.
	checkImagePasswordRefused(t, v, imagePW)
	log2 := v.serialLog(t)
	if !strings.Contains(log2[len(log1):], "Mounted root (squashfs filesystem) readonly on device 254:3") {
		t.Errorf("after the update root is not partition 3:\n%s", tail(log2, 3000))
	}
	if !regexp.MustCompile(`Kernel command line: .*PARTNROFF=2 `).MatchString(log2[len(log1):]) {
		t.Errorf("the kernel did not get PARTNROFF=2 after the update")
	}

	// Power off, then look at the disk the VM used.
	if err := postPoweroff(v, pw); err != nil {
		t.Logf("poweroff: %v", err)
	}
	select {
	case <-v.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("VM did not power off\n%s", tail(v.serialLog(t), 2000))
	}
	for _, f := range []string{"cmdline.txt", "loader/entries/gokrazy.conf"} {
		c := bootFile(t, diskA, f)
		if !strings.Contains(c, "/PARTNROFF=2 ") || strings.Contains(c, "PARTNROFF=1") {
			t.Errorf("%s after the update: %q", f, c)
		}
	}
	perm := extractPerm(t, diskA, dir)
	if o, err := exec.Command(testtool.Path(t, "e2fsck", "e2fsprogs"), "-n", "-f", perm).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -n -f /perm after three boots: %v\n%s", err, o)
	}
	checkPermPassword(t, perm, pw)
	// /perm survived: the directory init created on the first boot is
	// still there, older than the update, and the file system was mounted
	// by all three boots (the first, the password's reboot, the update's;
	// not recreated).
	dcmd := exec.Command(testtool.Path(t, "debugfs", "e2fsprogs"), "-R", "stat /var", perm)
	dcmd.Env = append(os.Environ(), "DEBUGFS_PAGER=__none__", "PAGER=__none__")
	dbg, err := dcmd.CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs: %v\n%s", err, dbg)
	}
	m := regexp.MustCompile(`crtime: 0x([0-9a-f]+)`).FindSubmatch(dbg)
	if m == nil {
		t.Fatalf("no crtime for /perm/var:\n%s", dbg)
	}
	crtime, _ := strconv.ParseInt(string(m[1]), 16, 64)
	if !time.Unix(crtime, 0).Before(updStart) {
		t.Errorf("/perm/var was created at %s, after the update started at %s: /perm did not survive", time.Unix(crtime, 0).UTC(), updStart.UTC())
	}
	hdr, err := exec.Command(testtool.Path(t, "dumpe2fs", "e2fsprogs"), "-h", perm).CombinedOutput()
	if err != nil {
		t.Fatalf("dumpe2fs: %v\n%s", err, hdr)
	}
	mc := regexp.MustCompile(`Mount count:\s+(\d+)`).FindSubmatch(hdr)
	if mc == nil {
		t.Fatalf("dumpe2fs: no mount count:\n%s", hdr)
	}
	if n, _ := strconv.Atoi(string(mc[1])); n < 3 {
		t.Errorf("/perm mount count %d: it was not mounted by all three boots", n)
	}
}

// checkPinned checks that the update spoke HTTPS and pinned the VM's
// certificate on first use, and that make update from a checkout whose pin
// holds another certificate stops before sending anything.
func checkPinned(t *testing.T, tool, inst, disk string, v *vm, out string) {
	t.Helper()
	if !strings.Contains(out, "updating https://") || !strings.Contains(out, "pinned the device's certificate") {
		t.Errorf("the update did not speak HTTPS and pin the certificate:\n%s", out)
	}
	certPEM, err := os.ReadFile(filepath.Join(inst, gokconfig.StateDir, gokconfig.SelfSignedCertFile))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	pin, err := os.ReadFile(filepath.Join(inst, gokconfig.StateDir, gokconfig.PinFile))
	if err != nil || block == nil || strings.TrimSpace(string(pin)) != tlspin.Fingerprint(block.Bytes) {
		t.Errorf("pin %q (%v), want the fingerprint of the instance's certificate", pin, err)
	}
	// Another checkout: the same config, password and files, no
	// certificate of its own, a pin of some other device.
	other := filepath.Join(t.TempDir(), "other")
	if err := os.MkdirAll(filepath.Join(other, gokconfig.StateDir), 0o700); err != nil {
		t.Fatal(err)
	}
	files, err := os.ReadDir(inst)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !f.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(inst, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(other, f.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(other, gokconfig.StateDir, gokconfig.PinFile), []byte("sha256:"+strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := pushUpdate(tool, other, disk, v)
	if err == nil || !strings.Contains(string(o), "device certificate changed") || strings.Contains(string(o), "/update/root") {
		t.Errorf("update to a device whose certificate differs from the pin: %v\n%s", err, o)
	}
}

func postPoweroff(v *vm, pw string) error {
	req, err := http.NewRequest("POST", v.webURL("/poweroff"), nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth("gokrazy", pw)
	c := *v.web
	c.Timeout = 2 * time.Minute
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

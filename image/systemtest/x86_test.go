//go:build systemtest

package systemtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/testtool"
)

// x86Accel is QEMU's accelerator for the x86-64 VM: KVM where /dev/kvm
// exists and runs OVMF, else TCG. Nested KVM on the shared build machines
// stops in OVMF at once with "KVM internal error. Suberror: 1" (emulation
// failure), so KVM is tried on the firmware alone for a few seconds first.
// PRESSCAP_QEMU_ACCEL=kvm or tcg skips the probe.
func x86Accel(t testing.TB, qemu, firmware string) string {
	t.Helper()
	if a := os.Getenv("PRESSCAP_QEMU_ACCEL"); a != "" {
		return a
	}
	if _, err := os.Stat("/dev/kvm"); err != nil {
		return "tcg"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-machine", "q35,accel=kvm", "-cpu", "host", "-m", "256", "-bios", firmware,
		"-nodefaults", "-display", "none", "-serial", "none", "-monitor", "none", "-net", "none")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if strings.Contains(stderr.String(), "KVM internal error") || (err != nil && ctx.Err() == nil) {
		t.Logf("KVM does not run OVMF here, booting with TCG: %v %s", err, tail(stderr.String(), 200))
		return "tcg"
	}
	return "kvm"
}

// x86Q35 is the VM edition as a hypervisor runs it: q35, OVMF (UEFI, no
// Secure Boot), the ring on the VM's second disk.
func x86Q35(t testing.TB) platform {
	p := platform{
		instance: "presscap-x86",
		qemu:     "qemu-system-x86_64", qemuPkg: "qemu-system-x86",
		firmware: "/usr/share/ovmf/OVMF.fd", fwPkg: "ovmf",
		sdboot: "build/systemd-boot-x64/usr/lib/systemd/boot/efi/systemd-bootx64.efi", sdbootMk: "make systemtest",
		ringDevice: []string{"-device", "virtio-blk-pci,drive=ring"},
	}
	accel := x86Accel(t, testtool.Path(t, p.qemu, p.qemuPkg), p.firmware)
	cpu := "max"
	if accel == "kvm" {
		cpu = "host"
	}
	p.machine = []string{"-machine", "q35,accel=" + accel, "-cpu", cpu}
	return p
}

// TestX86EndToEnd boots the VM edition twice, sharing each boot between
// its checks: first the raw image make vm writes, then its qcow2
// conversion (as Proxmox imports it) with the same ring disk, as a
// provider replacing the system disk would (without carrying /perm over,
// so the encrypted ring's key is gone and the ring is replaced). Each boot records from a
// virtio capture NIC fed from the host, takes a press of a USB keyboard on
// an emulated xHCI controller (a passed-through dongle's path), and
// uploads PCAPs to OpenSSH on the host that equal what was sent. The probe
// runs in inline mode: the capture NIC is one port of its bridge, and what
// it receives leaves the second virtio NIC (checkInline).
func TestX86EndToEnd(t *testing.T) {
	dir := t.TempDir()
	workdir, err := filepath.Abs(filepath.Join(repo, "build", fmt.Sprintf("_systemtest-x86-%d", os.Getpid())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(workdir) })
	tool := imageTool(t, dir)
	x86 := x86Q35(t)
	inst := copyInstance(t, dir, x86.instance)
	e := setupE2E(t, dir, inst)
	setInline(t, inst)

	ts := time.Now().UTC().Truncate(time.Second)
	raw := filepath.Join(dir, "presscap-x86.img")
	buildImageFor(t, x86, tool, inst, raw, workdir, ts)
	pw := password(t, inst)
	// Converted before the first boot, as make vm does.
	qcow := filepath.Join(dir, "presscap-x86.qcow2")
	if out, err := exec.Command(testtool.Path(t, "qemu-img", "qemu-utils"), "convert", "-f", "raw", "-O", "qcow2", raw, qcow).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	// The ring disk as make vm makes it (1 GiB here).
	ring := filepath.Join(dir, "presscap-ring.img")
	if out, err := exec.Command(tool, "ringdisk", "-instance", inst, "-o", ring, "-size", "1G").CombinedOutput(); err != nil {
		t.Fatalf("image ringdisk: %v\n%s", err, out)
	}

	nic := newInlineNICs(t)
	statusPort := freePort(t)
	var firstPress time.Time
	for i, disk := range []string{raw, qcow} {
		boot := filepath.Join(dir, fmt.Sprintf("boot%d", i+1))
		if err := os.Mkdir(boot, 0o755); err != nil {
			t.Fatal(err)
		}
		v := startVMOn(t, x86, inst, disk, ring, boot, e.guestNet(statusPort), nic.args)
		nic.reset()
		gen := startGenerator(t, nic.host, nic.qemuAddr, 40)
		_, upDur := v.waitUp(t, pw, ts.Format(time.RFC3339), 5*time.Minute)
		st, recDur := waitRecording(t, v, statusPort, pw, 3*time.Minute)
		t.Logf("bench: x86-64 %s: QEMU start to web UI %.1f s, to recording %.1f s (%s, OVMF)",
			filepath.Base(disk), upDur.Seconds(), recDur.Seconds(), strings.Join(x86.machine, " "))
		log := v.serialLog(t)
		if !strings.Contains(log, "EXT4-fs (vdb1): mounted") {
			t.Errorf("boot %d: the ring disk's partition vdb1 was not mounted:\n%s", i+1, tail(log, 3000))
		}
		// The ring is encrypted with a key kept on the system disk's
		// /perm, which a fresh system disk lacks: the probe must find its
		// ring disk, say why it replaced the ring, and record anew.
		if i == 1 && (st.Ring == nil || st.Ring.Oldest.Before(firstPress) || !strings.Contains(st.Storage.Replaced, "key missing")) {
			t.Errorf("after the system disk was replaced without its /perm: ring %+v, storage.replaced %q; want a new ring (after the first boot's press at %s) replaced for \"key missing\"", st.Ring, st.Storage.Replaced, firstPress)
		}
		press := e.pressAndCheck(t, v, gen, statusPort, pw)
		nic.checkInline(t, e, gen, press)
		if i == 0 {
			firstPress = press
		}
		gen.halt()
		if err := postPoweroff(v, pw); err != nil {
			t.Logf("poweroff: %v", err)
		}
		select {
		case <-v.done:
		case <-time.After(2 * time.Minute):
			t.Fatalf("boot %d: the VM did not power off\n%s", i+1, tail(v.serialLog(t), 2000))
		}
	}
}

package ports_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// kernelConfig returns the configuration embedded in a kernel module's
// vmlinuz (CONFIG_IKCONFIG: a gzip stream after the marker IKCFG_ST), the
// way scripts/extract-ikconfig finds it.
func kernelConfig(t *testing.T, module string) map[string]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-json", module).Output()
	if err != nil {
		t.Fatalf("go list -m %s: %v", module, err)
	}
	var m struct{ Dir string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		t.Fatalf("go list -m -json: %v %q", err, out)
	}
	b, err := os.ReadFile(filepath.Join(m.Dir, "vmlinuz"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		zr.Multistream(false)
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatalf("%s vmlinuz: %v", module, err)
		}
	}
	i := bytes.Index(b, []byte("IKCFG_ST"))
	if i < 0 {
		t.Fatalf("%s: vmlinuz embeds no configuration (CONFIG_IKCONFIG)", module)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b[i+len("IKCFG_ST"):]))
	if err != nil {
		t.Fatalf("%s: embedded configuration: %v", module, err)
	}
	zr.Multistream(false)
	text, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: embedded configuration: %v", module, err)
	}
	cfg := map[string]string{}
	for _, line := range strings.Split(string(text), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "CONFIG_") {
			cfg[k] = v
		}
	}
	return cfg
}

// TestKernelsCanBridge: the kernels the images ship have what inline and
// mirror mode need, so that a kernel update that drops one fails here
// rather than at a customer's. The Pi's: the bridge, packet sockets and
// the USB 3 gigabit adapters' driver (RTL8152/8153); the QEMU one: the
// bridge and virtio NICs, for the system test with two NICs.
func TestKernelsCanBridge(t *testing.T) {
	for _, k := range []struct {
		module string
		want   []string
	}{
		{"github.com/gokrazy/kernel.rpi", []string{"CONFIG_BRIDGE", "CONFIG_PACKET", "CONFIG_IPV6", "CONFIG_USB_RTL8152", "CONFIG_USB_NET_CDC_NCM", "CONFIG_USB_NET_CDCETHER"}},
		{"github.com/gokrazy/kernel.arm64", []string{"CONFIG_BRIDGE", "CONFIG_PACKET", "CONFIG_IPV6", "CONFIG_VIRTIO_NET"}},
	} {
		cfg := kernelConfig(t, k.module)
		for _, opt := range k.want {
			if cfg[opt] != "y" {
				t.Errorf("%s: %s=%q, want y", k.module, opt, cfg[opt])
			}
		}
	}
}

// TestX86KernelCanBridge: the x86 VM edition's kernel (a bzImage, whose
// embedded configuration kernelConfig cannot reach) has the bridge, packet
// sockets and virtio NICs built in, per its modules.builtin: the system
// test boots it in inline mode over two virtio NICs.
func TestX86KernelCanBridge(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/gokrazy/kernel.amd64").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/gokrazy/kernel.amd64: %v", err)
	}
	lists, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "lib", "modules", "*", "modules.builtin"))
	if len(lists) != 1 {
		t.Fatalf("kernel.amd64's modules.builtin: %q", lists)
	}
	b, err := os.ReadFile(lists[0])
	if err != nil {
		t.Fatal(err)
	}
	builtin := strings.Split(string(b), "\n")
	for _, m := range []string{"kernel/net/bridge/bridge.ko", "kernel/net/packet/af_packet.ko", "kernel/drivers/net/virtio_net.ko"} {
		if !slices.Contains(builtin, m) {
			t.Errorf("kernel.amd64 does not build in %s", m)
		}
	}
}

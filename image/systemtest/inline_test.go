//go:build systemtest

package systemtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// inlineNICs are the guest's two bridged ports in inline mode, both QEMU
// UDP socket backends on loopback: frames the host writes to qemuAddr
// enter eth1 (the router's side, as with captureNIC), and what the guest's
// bridge forwards out of eth2 (the device's side) arrives on out.
type inlineNICs struct {
	*captureNIC
	out *net.UDPConn

	mu        sync.Mutex
	forwarded map[int][]byte // by sequence number, as the frame left eth2
}

func newInlineNICs(t *testing.T) *inlineNICs {
	t.Helper()
	in := newCaptureNIC(t)
	out, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	qemuOut := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: freePort(t)}
	n := &inlineNICs{captureNIC: &captureNIC{host: in.host, qemuAddr: in.qemuAddr, args: append(append([]string(nil), in.args...),
		"-netdev", fmt.Sprintf("socket,id=capb,udp=%s,localaddr=%s", out.LocalAddr(), qemuOut),
		"-device", "virtio-net-pci,netdev=capb,romfile=,mac=52:54:00:12:34:98",
	)}, out: out, forwarded: map[int][]byte{}}
	go func() {
		buf := make([]byte, 65536)
		for {
			k, _, err := out.ReadFromUDP(buf)
			if err != nil {
				return // closed at the test's end
			}
			if m := seqRE.FindSubmatch(buf[:k]); m != nil {
				seq, _ := strconv.Atoi(string(m[1]))
				n.mu.Lock()
				n.forwarded[seq] = bytes.Clone(buf[:k])
				n.mu.Unlock()
			}
		}
	}()
	return n
}

// reset forgets what was forwarded, for a new generator's sequence.
func (n *inlineNICs) reset() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.forwarded = map[int][]byte{}
}

// setInline makes the probe configuration setupE2E wrote bridge the
// guest's eth1 (the generator's side) and eth2 instead of capturing eth1
// alone; the management NIC eth0 keeps the image's DHCP client.
func setInline(t *testing.T, inst string) {
	t.Helper()
	p := filepath.Join(inst, "probe.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var pc map[string]any
	if err := json.Unmarshal(b, &pc); err != nil {
		t.Fatal(err)
	}
	delete(pc, "links")
	pc["network"] = map[string]any{"mode": "inline", "ports": []map[string]string{
		{"interface": "eth1", "side": "router"}, {"interface": "eth2", "side": "device"}}}
	if b, err = json.MarshalIndent(pc, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkInline checks a boot in inline mode after pressAndCheck: the frames
// the generator sent into eth1 inside the press's inner window left eth2
// byte for byte (at most a tenth missing, as for the capture), and the
// press's manifest on the SFTP server names both ports with their sides.
func (n *inlineNICs) checkInline(t *testing.T, e *e2e, gen *generator, press time.Time) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	missing, want := 0, 0
	for s := 0; s < gen.count(); s++ {
		if at := gen.sentAt(s); at.Before(press.Add(-8*time.Second)) || at.After(press.Add(3*time.Second)) {
			continue
		}
		want++
		got, ok := n.forwarded[s]
		if !ok {
			missing++
			continue
		}
		if sent := frame(s, dportOf(s)); !bytes.Equal(got, sent) {
			t.Errorf("seq %d left eth2 as % x, entered eth1 as % x", s, got, sent)
		}
	}
	t.Logf("inline: %d frames of the generator's left the bridge's other port, %d of %d in the inner window missing", len(n.forwarded), missing, want)
	if want == 0 || missing > want/10 {
		t.Errorf("inline: %d of %d frames sent into eth1 inside the window did not leave eth2", missing, want)
	}
	ms, _ := filepath.Glob(filepath.Join(e.remote, "*_manifest.json"))
	if len(ms) != 1 {
		t.Fatalf("manifests on the SFTP server: %q", ms)
	}
	b, err := os.ReadFile(ms[0])
	if err != nil {
		t.Fatal(err)
	}
	var man struct {
		Links []struct{ Name, Side string } `json:"links"`
	}
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(man.Links); got != "[{eth1 router} {eth2 device}]" {
		t.Errorf("manifest links %s, want eth1 on the router's side, eth2 on the device's", got)
	}
}

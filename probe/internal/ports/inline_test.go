package ports_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/internal/ports"
)

// helperEnv carries "mode port,port" to TestSetupProcess.
const helperEnv = "PRESSCAP_PORTS_HELPER"

// TestSetupProcess is the process TestInlineEndToEnd starts inside the
// probe's namespace and kills: it applies the mode and reports the ports'
// events on stdout, as the probe service will.
func TestSetupProcess(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process of TestInlineEndToEnd")
	}
	mode, list, _ := strings.Cut(spec, " ")
	s := ports.Setup{Mode: mode, Ports: strings.Split(list, ",")}
	if err := ports.Apply(s); err != nil {
		fmt.Println("apply failed:", err)
		os.Exit(2)
	}
	fmt.Println("applied")
	err := ports.Watch(context.Background(), s, func(e ports.Event) {
		fmt.Printf("event %s %s %v\n", e.Port, e.State, e.Err)
	})
	fmt.Println("watch ended:", err)
	os.Exit(3)
}

const (
	// snap is what tcpdump keeps of each frame: the headers of the TCP
	// transfer, whose payload is compared by its SHA-256.
	snap     = 256
	routerIP = "192.168.77.1"
	prefix   = "192.168.77."
)

// TestInlineEndToEnd is the inline mode between a router running dnsmasq
// and a phone, each in a namespace: the bridge a separate process makes
// forwards DHCP, ICMP, UDP, TCP, tagged and link-local frames untouched
// (tcpdump on both cable ends sees the same bytes), the probe gets its own
// lease from gokrazy's DHCP client, link loss and a re-plugged port are
// handled, and killing the process that made the bridge cuts nothing.
func TestInlineEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root, network namespaces, dnsmasq, udhcpc, tcpdump and Go")
	}
	netnstest.Require(t, "ip", "sysctl", "tcpdump")
	dnsmasq := testtool.Path(t, "dnsmasq", "dnsmasq-base")
	udhcpc := testtool.Path(t, "udhcpc", "udhcpc")
	gokrazyDHCP := buildGokrazyDHCP(t)

	probe, router, phone := probeNS(t)
	netnstest.Run(t, "ip", "-n", router, "addr", "add", routerIP+"/24", "dev", "lan")
	dir := t.TempDir()
	leases := filepath.Join(dir, "leases")
	startProcess(t, "dnsmasq", "ip", "netns", "exec", router, dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null",
		"--no-resolv", "--no-hosts", "--port=0", "--interface=lan", "--bind-interfaces", "--user=root",
		"--dhcp-range="+prefix+"100,"+prefix+"199,255.255.255.0,1h", "--dhcp-authoritative",
		"--dhcp-leasefile="+leases, "--pid-file="+filepath.Join(dir, "dnsmasq.pid"), "--log-facility=-")

	setup, events := startSetup(t, probe)
	events.Expect(t, "applied")
	events.Expect(t, "event eth0 up <nil>", "event eth1 up <nil>")

	// The phone's lease crosses the bridge, by busybox's client.
	script := filepath.Join(dir, "bound.sh")
	phoneIPFile := filepath.Join(dir, "phone-ip")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] || exit 0\nip addr add \"$ip/$subnet\" dev \"$interface\" && echo \"$ip\" > "+phoneIPFile+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	netnstest.Run(t, "ip", "netns", "exec", phone, udhcpc, "-i", "eth0", "-f", "-q", "-n", "-t", "20", "-T", "1", "-s", script)
	b, err := os.ReadFile(phoneIPFile)
	if err != nil {
		t.Fatalf("udhcpc bound no address: %v", err)
	}
	phoneIP := strings.TrimSpace(string(b))
	phoneMAC := showLink(t, phone, "eth0").Address
	brMAC := showLink(t, probe, "br0").Address
	if !strings.HasPrefix(phoneIP, prefix) {
		t.Fatalf("phone got %q, not from dnsmasq's range", phoneIP)
	}

	// The probe's own lease on the bridge, by the client the image runs
	// (its /tmp private: it writes /tmp/resolv.conf).
	startProcess(t, "gokrazy dhcp", "ip", "netns", "exec", probe, "sh", "-c", `mount -t tmpfs tmpfs /tmp && exec "$0" -interface br0`, gokrazyDHCP)
	var probeIP string
	testtool.WaitFor(t, "the probe's address on br0", 60*time.Second, func() bool {
		probeIP = bridgeIPv4(t, probe)
		return probeIP != ""
	})
	if !strings.HasPrefix(probeIP, prefix) {
		t.Fatalf("br0 got %q, not from dnsmasq's range", probeIP)
	}
	lf, _ := os.ReadFile(leases)
	for _, want := range []string{phoneMAC + " " + phoneIP, brMAC + " " + probeIP} {
		if !strings.Contains(string(lf), want) {
			t.Errorf("dnsmasq's leases lack %q:\n%s", want, lf)
		}
	}

	// What crosses, seen on both cable ends; the probe's own frames (to
	// and from br0) are on the router's side only.
	expr := "not ether host " + brMAC
	atRouter := netnstest.StartTcpdumpIn(t, router, "lan", snap, expr)
	atPhone := netnstest.StartTcpdumpIn(t, phone, "eth0", snap, expr)

	pingRouter(t, phone, 5)
	sendUDP(t, phone, router, 100)
	transfer(t, phone, router, 16<<20, 0, nil)
	sender := netnstest.NewSenderIn(t, phone, "eth0")
	// Untagged, 802.1Q, 802.1ad and priority-tagged frames, to the
	// router: their own destination is the source of one of them, which
	// the bridge would learn on the phone's side.
	routerMAC, _ := net.ParseMAC(showLink(t, router, "lan").Address)
	frames := netnstest.Frames(42)
	for _, f := range frames {
		copy(f, routerMAC)
	}
	eapol, lldp, pause := linkLocal(0x03, 0x888e), linkLocal(0x0e, 0x88cc), linkLocal(0x01, 0x8808)
	if err := sender.Send(append(frames, pause, eapol, lldp)...); err != nil {
		t.Fatal(err)
	}
	last := func(ps []netnstest.Packet) bool {
		return len(ps) > 0 && bytes.Equal(ps[len(ps)-1].Data, lldp)
	}
	compareEnds(t, atPhone.Settle(t, last), atRouter.Settle(t, last), frames, [][]byte{eapol, lldp}, pause)

	// Link loss on the phone's side is reported, and so is its return.
	netnstest.Run(t, "ip", "-n", phone, "link", "set", "eth0", "down")
	events.Expect(t, "event eth1 down <nil>")
	netnstest.Run(t, "ip", "-n", phone, "link", "set", "eth0", "up")
	events.Expect(t, "event eth1 up <nil>")

	// A re-plugged port (a new interface, down, outside the bridge) is
	// taken back into the bridge.
	netnstest.Run(t, "ip", "-n", probe, "link", "del", "eth1")
	events.Expect(t, "event eth1 gone <nil>")
	netnstest.Cable(t, probe, "eth1", phone, "eth0")
	netnstest.Run(t, "ip", "netns", "exec", phone, "sysctl", "-q", "-w", "net.ipv6.conf.eth0.disable_ipv6=1")
	netnstest.Run(t, "ip", "-n", phone, "addr", "add", phoneIP+"/24", "dev", "eth0")
	netnstest.Run(t, "ip", "-n", phone, "link", "set", "eth0", "up")
	events.Expect(t, "event eth1 up <nil>")
	if l := showLink(t, probe, "eth1"); l.Master != "br0" {
		t.Fatalf("re-plugged eth1: master %q, want br0", l.Master)
	}
	pingRouter(t, phone, 3)

	// Killing the process that made the bridge, and starting it again
	// (a probe restart: Apply on the bridge that exists), cuts no
	// transfer.
	transfer(t, phone, router, 24<<20, 8*time.Millisecond, func() {
		if err := setup.Process.Kill(); err != nil {
			t.Errorf("kill the setup process: %v", err)
		}
		setup.Wait()
		_, again := startSetup(t, probe)
		again.Expect(t, "applied")
	})
	if br := showLink(t, probe, "br0"); br.Address != brMAC {
		t.Errorf("after the restart br0 is %s, was %s", br.Address, brMAC)
	}
}

// startSetup starts TestSetupProcess in the probe's namespace, inline over
// eth0 and eth1, and follows what it says.
func startSetup(t *testing.T, probe string) (*exec.Cmd, netnstest.Lines) {
	t.Helper()
	setup := exec.Command("ip", "netns", "exec", probe, os.Args[0], "-test.run=^TestSetupProcess$", "-test.count=1")
	setup.Env = append(os.Environ(), helperEnv+"=inline eth0,eth1")
	out, err := setup.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	setup.Stderr = os.Stderr
	if err := setup.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { setup.Process.Kill(); setup.Wait() })
	return setup, netnstest.Follow(out)
}

// buildGokrazyDHCP builds gokrazy's DHCP client, the one in the image,
// outside /tmp (its process gets a private /tmp).
func buildGokrazyDHCP(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "presscap-dhcp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "dhcp")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/gokrazy/gokrazy/cmd/dhcp")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build gokrazy's dhcp: %v\n%s", err, out)
	}
	return bin
}

// startProcess runs a long-lived program until the test ends; its output
// is logged if the test fails.
func startProcess(t *testing.T, what string, args ...string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", what, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s said:\n%s", what, out.String())
		}
	})
}

func bridgeIPv4(t *testing.T, ns string) string {
	for _, a := range showLink(t, ns, "br0").AddrInfo {
		if ip := net.ParseIP(a.Local); ip != nil && ip.To4() != nil {
			return a.Local
		}
	}
	return ""
}

// pingRouter sends n echo requests from the phone and checks each reply
// carries the request's data back.
func pingRouter(t *testing.T, phone string, n int) {
	t.Helper()
	var c *icmp.PacketConn
	if err := netnstest.DoIn(phone, func() (err error) {
		c, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for seq := 1; seq <= n; seq++ {
		data := fmt.Appendf(nil, "presscap inline %d %x", seq, rand.Uint64())
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: 0x7c, Seq: seq, Data: data}}
		wb, _ := msg.Marshal(nil)
		deadline := time.Now().Add(10 * time.Second)
		for got := false; !got; {
			if time.Now().After(deadline) {
				t.Fatalf("no echo reply %d from the router", seq)
			}
			if _, err := c.WriteTo(wb, &net.IPAddr{IP: net.ParseIP(routerIP)}); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			rb := make([]byte, 1500)
			for {
				m, _, err := c.ReadFrom(rb)
				if err != nil {
					break // resend: the first may wait for ARP
				}
				r, err := icmp.ParseMessage(1, rb[:m])
				if e, ok := r.Body.(*icmp.Echo); err == nil && ok && r.Type == ipv4.ICMPTypeEchoReply && e.Seq == seq {
					if !bytes.Equal(e.Data, data) {
						t.Fatalf("echo reply %d carries %q, sent %q", seq, e.Data, data)
					}
					got = true
					break
				}
			}
		}
	}
}

// sendUDP sends n datagrams of many sizes from the phone to the router,
// which must receive each unchanged and in order.
func sendUDP(t *testing.T, phone, router string, n int) {
	t.Helper()
	var rx net.PacketConn
	var tx net.Conn
	if err := netnstest.DoIn(router, func() (err error) {
		rx, err = net.ListenPacket("udp4", routerIP+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	if err := netnstest.DoIn(phone, func() (err error) {
		tx, err = net.Dial("udp4", rx.LocalAddr().String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	buf := make([]byte, 2000)
	for i := range n {
		d := make([]byte, 1+i*14)
		for j := range d {
			d[j] = byte(i ^ j)
		}
		if _, err := tx.Write(d); err != nil {
			t.Fatal(err)
		}
		rx.SetReadDeadline(time.Now().Add(10 * time.Second))
		m, _, err := rx.ReadFrom(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if !bytes.Equal(buf[:m], d) {
			t.Fatalf("datagram %d: got %d bytes, sent %d, or different bytes", i, m, len(d))
		}
	}
}

// transfer sends size random bytes over TCP from the phone to the router
// in 256 KiB writes, pausing between them, and checks what arrives by
// SHA-256. during, if set, runs once a third has been sent.
func transfer(t *testing.T, phone, router string, size int, pause time.Duration, during func()) {
	t.Helper()
	var ln net.Listener
	if err := netnstest.DoIn(router, func() (err error) {
		ln, err = net.Listen("tcp4", routerIP+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		h := sha256.New()
		n, err := io.Copy(h, c)
		got <- fmt.Sprintf("%d %x %v", n, h.Sum(nil), err)
	}()
	var c net.Conn
	if err := netnstest.DoIn(phone, func() (err error) {
		c, err = net.DialTimeout("tcp4", ln.Addr().String(), 10*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	chunk := make([]byte, 256<<10)
	for sent := 0; sent < size; sent += len(chunk) {
		for i := range chunk {
			chunk[i] = byte(rand.Uint32())
		}
		h.Write(chunk)
		c.SetWriteDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Write(chunk); err != nil {
			t.Fatalf("TCP write at %d of %d bytes: %v", sent, size, err)
		}
		if during != nil && sent >= size/3 {
			during()
			during = nil
		}
		time.Sleep(pause)
	}
	c.Close()
	want := fmt.Sprintf("%d %x <nil>", size, h.Sum(nil))
	select {
	case g := <-got:
		if g != want {
			t.Fatalf("TCP transfer: router got %s, want %s", g, want)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("TCP transfer: the router got no end after 60s")
	}
}

// linkLocal is a minimal frame to 01:80:c2:00:00:<last> with EtherType
// etype, from an address no other frame uses.
func linkLocal(last byte, etype uint16) []byte {
	f := make([]byte, 60)
	copy(f, []byte{0x01, 0x80, 0xc2, 0, 0, last, 0x02, 0, 0, 0, 0xfe, last, byte(etype >> 8), byte(etype)})
	for i := 14; i < len(f); i++ {
		f[i] = byte(i) ^ last
	}
	return f
}

// compareEnds checks that the two cable ends saw the same frames, byte for
// byte and as often, that the frames sent from the phone are among them,
// and that notCrossing was seen leaving the phone and never arrived.
func compareEnds(t *testing.T, phoneSide, routerSide []netnstest.Packet, sent, mustCross [][]byte, notCrossing []byte) {
	t.Helper()
	count := func(ps []netnstest.Packet) map[string]int {
		m := map[string]int{}
		for _, p := range ps {
			m[fmt.Sprintf("%d %x", p.OrigLen, p.Data)]++
		}
		return m
	}
	key := func(f []byte) string { return fmt.Sprintf("%d %x", len(f), f[:min(len(f), snap)]) }
	ph, ro := count(phoneSide), count(routerSide)
	if ph[key(notCrossing)] != 1 || ro[key(notCrossing)] != 0 {
		t.Errorf("PAUSE frame seen %d times leaving the phone and %d times at the router, want 1 and 0", ph[key(notCrossing)], ro[key(notCrossing)])
	}
	delete(ph, key(notCrossing))
	for _, f := range append(append([][]byte{}, sent...), mustCross...) {
		if ro[key(f)] != 1 {
			t.Errorf("frame %s reached the router %d times, want once", hex.EncodeToString(f[:16]), ro[key(f)])
		}
	}
	diffs := 0
	for k, n := range ph {
		if ro[k] != n {
			diffs++
			if diffs <= 5 {
				t.Errorf("seen %d times at the phone and %d at the router: %.80s", n, ro[k], k)
			}
		}
	}
	for k, n := range ro {
		if _, ok := ph[k]; !ok {
			diffs++
			if diffs <= 10 {
				t.Errorf("seen %d times at the router only: %.80s", n, k)
			}
		}
	}
	if diffs > 0 || t.Failed() {
		t.Fatalf("%d frames differ between the ends (%d and %d frames captured)", diffs, len(phoneSide), len(routerSide))
	}
	t.Logf("%d frames identical at both ends of the bridge", len(routerSide))
}

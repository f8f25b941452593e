// Package netnstest builds throw-away network topologies for tests: a veth
// pair whose host end stays in the test's own network namespace (so capture
// code and tcpdump can open it directly) and whose peer end lives in a fresh
// namespace the test owns, where traffic is generated. Everything is named
// with random bits so that test packages running in parallel never collide,
// and everything is removed with t.Cleanup.
//
// Tests that use it need root and the iproute2 package; tests never skip
// when they are missing, they fail and name the Debian package.
package netnstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/presscap/presscap/internal/testing/testtool"
)

// Pair is a veth pair: Host is in the caller's namespace, Peer inside NS.
type Pair struct {
	Host string // interface name in the test's namespace
	Peer string // interface name inside NS
	NS   string // network namespace name (as `ip netns` knows it)
	t    testing.TB
}

// Require fails the test unless the process is root and every named
// program is on PATH; the failure names the Debian package to install.
func Require(t testing.TB, programs ...string) {
	t.Helper()
	for _, p := range programs {
		pkg := debianPackage[p]
		if pkg == "" {
			pkg = p
		}
		testtool.Path(t, p, pkg)
	}
	testtool.Root(t, "network namespace tests")
}

var debianPackage = map[string]string{
	"ip":               "iproute2",
	"tcpdump":          "tcpdump",
	"ethtool":          "ethtool",
	"tcpreplay":        "tcpreplay",
	"trafgen":          "netsniff-ng",
	"tshark":           "tshark",
	"capinfos":         "wireshark-common",
	"taskset":          "util-linux",
	"mkfs.ext4":        "e2fsprogs",
	"mkfs.vfat":        "dosfstools",
	"mkfs.exfat":       "exfatprogs",
	"mount.exfat-fuse": "exfat-fuse",
	"losetup":          "mount",
}

// RandomSuffix returns n random hex characters, for names that must not
// collide with other tests running at the same time.
func RandomSuffix(n int) string {
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)[:n]
}

// NewPair creates a namespace and a veth pair, brings both ends up with
// IPv6 disabled (so the kernel sends no router solicitations or MLD reports
// that would show up in captures), and registers cleanup. Interface names
// are at most 10 characters, within the kernel's 15.
func NewPair(t testing.TB) *Pair {
	t.Helper()
	Require(t, "ip")
	s := RandomSuffix(7)
	p := &Pair{Host: "pc" + s + "h", Peer: "pc" + s + "p", NS: "presscap-" + s, t: t}
	Run(t, "ip", "netns", "add", p.NS)
	t.Cleanup(func() {
		// Deleting the namespace destroys the peer and with it the host end;
		// delete the host end first anyway in case it was moved.
		exec.Command("ip", "link", "del", p.Host).Run()
		exec.Command("ip", "netns", "del", p.NS).Run()
	})
	p.create(t)
	p.Exec(t, "ip", "link", "set", "lo", "up")
	p.WaitCarrier(t)
	return p
}

// NewNamespace creates an empty network namespace with loopback up and
// registers its removal; it returns the name `ip netns` knows it by.
func NewNamespace(t testing.TB) string {
	t.Helper()
	Require(t, "ip")
	ns := "presscap-" + RandomSuffix(7)
	Run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

// Cable joins namespace nsA and nsB with a veth pair, end a in nsA and
// end b in nsB, both created there directly (so the names need only be
// unique inside each namespace) and left down, IPv6 untouched.
func Cable(t testing.TB, nsA, a, nsB, b string) {
	t.Helper()
	Run(t, "ip", "-n", nsA, "link", "add", a, "type", "veth", "peer", "name", b, "netns", nsB)
}

// create adds the veth pair (host end here, peer end in NS) and sets it up.
func (p *Pair) create(t testing.TB) {
	t.Helper()
	Run(t, "ip", "link", "add", p.Host, "type", "veth", "peer", "name", p.Peer, "netns", p.NS)
	disableIPv6(t, p.Host, "")
	disableIPv6(t, p.Peer, p.NS)
	Run(t, "ip", "link", "set", p.Host, "up")
	p.Exec(t, "ip", "link", "set", p.Peer, "up")
}

func disableIPv6(t testing.TB, dev, ns string) {
	t.Helper()
	args := []string{"sysctl", "-q", "-w", "net.ipv6.conf." + dev + ".disable_ipv6=1"}
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	// Kernels built without IPv6 have no such sysctl: nothing to disable.
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		return
	}
	Run(t, args[0], args[1:]...)
}

// Unplug deletes the veth pair, as when a USB adapter is pulled: the host
// interface disappears.
func (p *Pair) Unplug(t testing.TB) {
	t.Helper()
	Run(t, "ip", "link", "del", p.Host)
}

// Replug re-creates the pair under the same names after Unplug. The host
// end comes back with a new ifindex and administratively DOWN, as a
// re-plugged USB adapter does; pass up to bring it up.
func (p *Pair) Replug(t testing.TB, up bool) {
	t.Helper()
	Run(t, "ip", "link", "add", p.Host, "type", "veth", "peer", "name", p.Peer, "netns", p.NS)
	disableIPv6(t, p.Host, "")
	disableIPv6(t, p.Peer, p.NS)
	p.Exec(t, "ip", "link", "set", p.Peer, "up")
	if up {
		Run(t, "ip", "link", "set", p.Host, "up")
		p.WaitCarrier(t)
	}
}

// WaitCarrier waits until both ends are operationally up with their
// queues attached. After an end comes up the kernel turns carrier and
// queueing on asynchronously (link watch, up to a second later); until
// then the peer's queue is "noop" and drops what is sent.
func (p *Pair) WaitCarrier(t testing.TB) {
	t.Helper()
	ready := func(out []byte) bool {
		s := string(out)
		return strings.Contains(s, "state UP") && !strings.Contains(s, "qdisc noop")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		host, _ := exec.Command("ip", "-o", "link", "show", "dev", p.Host).Output()
		peer, _ := exec.Command("ip", "-n", p.NS, "-o", "link", "show", "dev", p.Peer).Output()
		if ready(host) && ready(peer) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("veth %s/%s not up after 20s:\n%s%s", p.Host, p.Peer, host, peer)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SetUp sets the host end administratively up or down.
func (p *Pair) SetUp(t testing.TB, up bool) {
	t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	Run(t, "ip", "link", "set", p.Host, state)
}

// Exec runs a command inside NS and returns its combined output; a failure
// fails the test with that output.
func (p *Pair) Exec(t testing.TB, name string, args ...string) string {
	t.Helper()
	return Run(t, "ip", append([]string{"netns", "exec", p.NS, name}, args...)...)
}

// Run runs a command and returns its combined output; a failure fails the
// test with that output.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// DoIn runs fn on an OS thread switched into the named namespace.
func DoIn(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: if switching back failed it must not
		// return to the scheduler's pool in the wrong namespace, and a locked
		// thread is discarded when its goroutine ends.
		runtime.LockOSThread()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- fmt.Errorf("open namespace %s: %w", ns, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Sender writes raw frames out of the peer end; they arrive on the host end.
type Sender struct {
	fd int
}

// NewSender opens an AF_PACKET socket on the peer end inside NS.
func (p *Pair) NewSender(t testing.TB) *Sender {
	t.Helper()
	return NewSenderIn(t, p.NS, p.Peer)
}

// NewSenderIn opens an AF_PACKET socket on iface inside namespace ns
// ("" is the test's own).
func NewSenderIn(t testing.TB, ns, iface string) *Sender {
	t.Helper()
	s := &Sender{fd: -1}
	do := func(fn func() error) error { return DoIn(ns, fn) }
	if ns == "" {
		do = func(fn func() error) error { return fn() }
	}
	err := do(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind to %s: %w", iface, err)
		}
		s.fd = fd
		return nil
	})
	if err != nil {
		t.Fatalf("sender on %s in %s: %v", iface, ns, err)
	}
	t.Cleanup(func() { unix.Close(s.fd) })
	return s
}

// Send writes each frame as one packet. Transient buffer exhaustion
// (ENOBUFS: the receiving CPU's backlog is full) is retried for up to 5 s
// per frame, since tests send bursts and a loaded machine may run the
// softirq that empties the backlog late.
func (s *Sender) Send(frames ...[]byte) error {
	for i, f := range frames {
		var deadline time.Time
		for {
			_, err := unix.Write(s.fd, f)
			if err == nil {
				break
			}
			if deadline.IsZero() {
				deadline = time.Now().Add(5 * time.Second)
			}
			if (err == unix.ENOBUFS || err == unix.EAGAIN) && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
				continue
			}
			return fmt.Errorf("send frame %d (%d bytes): %w", i, len(f), err)
		}
	}
	return nil
}

//go:build linux

package filter

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/presscap/presscap/internal/testing/testtool"
)

// The live test: a veth pair in a network namespace of its own; frames of
// the corpus, each with a numbered trailer, go in at one end; at the other
// end, for each expression, tcpdump -i (libpcap's program in the kernel)
// and an AF_PACKET socket with our Live program attached both listen. The
// sets of frames each lets through must be equal.

const trailerMagic = 0xc0fe

type netns struct {
	name string
	path string
}

func run1(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newNetns creates a namespace with a veth pair a<->b, both up and ready
// to carry frames.
func newNetns(t *testing.T) netns {
	t.Helper()
	testtool.Root(t, "the live filter test (network namespaces, AF_PACKET)")
	testtool.Path(t, "ip", "iproute2")
	var rb [4]byte
	rand.Read(rb[:])
	name := fmt.Sprintf("pcfilt-%d-%s", os.Getpid(), hex.EncodeToString(rb[:]))
	run1(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ns := netns{name, filepath.Join("/run/netns", name)}
	// IPv6 off before the links exist and come up, so that no MLD report
	// or router solicitation goes out on them before it is off.
	for _, c := range [][]string{
		{"sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"},
		{"sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"},
		{"ip", "link", "add", "va", "type", "veth", "peer", "name", "vb"},
		{"ip", "link", "set", "va", "up"},
		{"ip", "link", "set", "vb", "up"},
	} {
		run1(t, append([]string{"ip", "netns", "exec", name}, c...)...)
	}
	// The kernel turns carrier and queueing on asynchronously (link watch);
	// until then a veth end's queue is "noop" and silently drops what is
	// sent, and a loaded machine runs link watch late.
	testtool.WaitFor(t, "the veth pair in "+name+" to carry frames", 20*time.Second, func() bool {
		out, err := exec.Command("ip", "-n", name, "-o", "link", "show").Output()
		if err != nil {
			return false
		}
		up := 0
		for _, l := range strings.Split(string(out), "\n") {
			if (strings.Contains(l, " va@") || strings.Contains(l, " vb@")) && strings.Contains(l, "state UP") && !strings.Contains(l, "qdisc noop") {
				up++
			}
		}
		return up == 2
	})
	return ns
}

// in runs fn on an OS thread inside the namespace; sockets created there
// stay in it.
func (ns netns) in(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(ns.path)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		} // else the thread dies with the goroutine, still locked
		errc <- ferr
	}()
	return <-errc
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openFiltered opens an AF_PACKET socket on ifname with prog attached
// before the socket is bound, so that nothing unfiltered is queued.
func openFiltered(ifname string, prog []unix.SockFilter) (int, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if prog != nil {
		fp := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("SO_ATTACH_FILTER: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("SO_RCVBUFFORCE: %w", err)
		}
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}
	if prog == nil {
		sa.Protocol = 0 // a sending socket receives nothing
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind: %w", err)
	}
	return fd, nil
}

// trailerID reads the frame number from the end of a received frame.
func trailerID(b []byte) (int, bool) {
	if len(b) < 6 || binary.BigEndian.Uint16(b[len(b)-6:]) != trailerMagic {
		return 0, false
	}
	return int(binary.BigEndian.Uint32(b[len(b)-4:])), true
}

// readPcapIDs returns the frame numbers in a pcap file written by tcpdump.
func readPcapIDs(path string) (map[int]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 24 {
		return nil, fmt.Errorf("%s: %d bytes, no pcap header", path, len(b))
	}
	var bo binary.ByteOrder = binary.LittleEndian
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d:
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("%s: not a pcap file", path)
	}
	ids := map[int]bool{}
	for off := 24; off < len(b); {
		if len(b)-off < 16 {
			return nil, fmt.Errorf("%s: torn record header at %d", path, off)
		}
		n := int(bo.Uint32(b[off+8:]))
		off += 16
		if len(b)-off < n {
			return nil, fmt.Errorf("%s: torn record at %d", path, off)
		}
		if id, ok := trailerID(b[off : off+n]); ok {
			ids[id] = true
		}
		off += n
	}
	return ids, nil
}

type liveCase struct {
	expr    string
	fd      int
	tcpdump *exec.Cmd
	stderr  *bytes.Buffer // written by the reader until stderrDone closes
	done    chan struct{}
	file    string
}

// stop ends tcpdump and returns everything it wrote to stderr (its
// statistics come last, at exit).
func (c *liveCase) stop() string {
	c.tcpdump.Process.Signal(syscall.SIGINT)
	<-c.done
	c.tcpdump.Wait()
	return c.stderr.String()
}

// liveExprs picks the expressions for the socket test: every one that
// involves VLAN tags (where live and offline programs differ) and a
// sample of the rest.
func liveExprs() []string {
	var out []string
	for i, e := range diffExprs {
		if strings.Contains(e, "vlan") || i%6 == 0 {
			out = append(out, e)
		}
	}
	return out
}

func TestLiveSocketAgainstTcpdump(t *testing.T) {
	tcpdump := testtool.Path(t, "tcpdump", "tcpdump")
	ns := newNetns(t)
	var frames [][]byte
	for _, f := range buildCorpus(3) {
		if f.truncated || len(f.data) < 14 {
			continue
		}
		b := append([]byte(nil), f.data...)
		b = binary.BigEndian.AppendUint16(b, trailerMagic)
		b = binary.BigEndian.AppendUint32(b, uint32(len(frames)))
		if len(b) > 2048 {
			t.Fatalf("frame %s is %d bytes, over tcpdump's -s 2048 here", f.name, len(b))
		}
		frames = append(frames, b)
	}
	exprs := liveExprs()
	dir := t.TempDir()
	const batch = 24
	total := 0
	for start := 0; start < len(exprs); start += batch {
		end := min(start+batch, len(exprs))
		// A busy machine can make tcpdump lose packets in its ring (it
		// says so); the comparison is then void and the batch runs again.
		for attempt := 1; ; attempt++ {
			n, void := liveBatch(t, tcpdump, ns, dir, exprs[start:end], frames)
			if void == "" {
				total += n
				break
			}
			if attempt == 3 {
				t.Fatalf("three attempts void: %s", void)
			}
			t.Logf("attempt %d void, again: %s", attempt, void)
		}
	}
	if total == 0 {
		t.Fatalf("no frame was accepted by any expression")
	}
	t.Logf("%d expressions, %d frames each, %d acceptances compared", len(exprs), len(frames), total)
}

func liveBatch(t *testing.T, tcpdump string, ns netns, dir string, exprs []string, frames [][]byte) (int, string) {
	cases := make([]*liveCase, len(exprs))
	defer func() {
		for _, c := range cases {
			if c == nil {
				continue
			}
			if c.fd >= 0 {
				unix.Close(c.fd)
			}
			if c.tcpdump != nil && c.tcpdump.Process != nil && c.tcpdump.ProcessState == nil {
				c.tcpdump.Process.Kill()
				<-c.done
				c.tcpdump.Wait()
			}
		}
	}()
	// A directory per batch and attempt, a file per case: no two tcpdumps
	// ever write the same file.
	batchDir, err := os.MkdirTemp(dir, "batch")
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range exprs {
		c := &liveCase{expr: e, fd: -1, stderr: &bytes.Buffer{}, done: make(chan struct{})}
		cases[i] = c
		prog, err := compileRaw([]Rule{{Expr: e, Snap: MaxSnap}}, Live, 0)
		if err != nil {
			t.Fatalf("%q: %v", e, err)
		}
		sf := make([]unix.SockFilter, len(prog))
		for j, r := range prog {
			sf[j] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
		}
		if err := ns.in(func() error {
			var err error
			c.fd, err = openFiltered("vb", sf)
			return err
		}); err != nil {
			t.Fatalf("%q: kernel refused our program: %v", e, err)
		}
		c.file = filepath.Join(batchDir, fmt.Sprintf("live-%d.pcap", i))
		c.tcpdump = exec.Command("ip", "netns", "exec", ns.name, tcpdump, "-i", "vb", "-p", "-n", "-U",
			"-s", "2048", "-B", "8192", "--immediate-mode", "-w", c.file, "--", e)
		pr, err := c.tcpdump.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.tcpdump.Start(); err != nil {
			t.Fatalf("starting tcpdump: %v", err)
		}
		// Wait for "listening on": the filter is then in the kernel.
		sc := bufio.NewScanner(pr)
		ready := make(chan bool, 1)
		go func() {
			defer close(c.done)
			ok := false
			for sc.Scan() {
				line := sc.Text()
				c.stderr.WriteString(line + "\n")
				if strings.Contains(line, "listening on") && !ok {
					ok = true
					ready <- true
				}
			}
			if !ok {
				ready <- false
			}
		}()
		select {
		case ok := <-ready:
			if !ok {
				t.Fatalf("tcpdump %q did not start: %s", e, c.stop())
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("tcpdump %q: no 'listening on' within 20 s: %s", e, c.stop())
		}
	}
	// Send every frame once, paced so that no socket buffer overflows.
	if err := ns.in(func() error {
		fd, err := openFiltered("va", nil)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ifi, err := net.InterfaceByName("va")
		if err != nil {
			return err
		}
		for i, f := range frames {
			sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
			copy(sa.Addr[:], f[:6])
			if err := unix.Sendto(fd, f, 0, sa); err != nil {
				return fmt.Errorf("sending frame %d (% x): %w", i, f, err)
			}
			if i%8 == 7 {
				time.Sleep(time.Millisecond)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Collect: our sockets are drained; tcpdump writes each packet to its
	// file as it goes (-U), so wait until every file holds as many of our
	// frames as the socket beside it got, or the files stop growing.
	ours := make([]map[int]bool, len(cases))
	refs := make([]map[int]bool, len(cases))
	buf := make([]byte, 65536)
	deadline := time.Now().Add(15 * time.Second)
	lastTotal, stableSince := -1, time.Now()
	for {
		time.Sleep(100 * time.Millisecond)
		done, total := true, 0
		for i, c := range cases {
			if ours[i] == nil {
				ours[i] = map[int]bool{}
			}
			for {
				n, _, err := unix.Recvfrom(c.fd, buf, unix.MSG_DONTWAIT)
				if err == unix.EAGAIN || err == unix.EWOULDBLOCK {
					break
				}
				if err != nil {
					t.Fatalf("%q: recvfrom: %v", c.expr, err)
				}
				if id, ok := trailerID(buf[:n]); ok {
					ours[i][id] = true
				}
			}
			ref, err := readPcapIDs(c.file)
			if err != nil {
				done = false // the last record may be half written
				continue
			}
			refs[i] = ref
			total += len(ref)
			if len(ref) < len(ours[i]) {
				done = false
			}
		}
		if total != lastTotal {
			lastTotal, stableSince = total, time.Now()
		}
		if done && time.Since(stableSince) > 300*time.Millisecond || time.Now().After(deadline) {
			break
		}
	}
	accepted, void := 0, ""
	for i, c := range cases {
		if stderr := c.stop(); !strings.Contains("\n"+stderr, "\n0 packets dropped by kernel") {
			void = fmt.Sprintf("%q: tcpdump dropped packets: %s", c.expr, stderr)
		}
		ref, err := readPcapIDs(c.file)
		if err != nil {
			t.Fatalf("%q: %v", c.expr, err)
		}
		refs[i] = ref
	}
	if void != "" {
		return 0, void
	}
	for i, c := range cases {
		ours, ref := ours[i], refs[i]
		var diffs []string
		for id := range frames {
			if ours[id] != ref[id] {
				diffs = append(diffs, fmt.Sprintf("frame %d (% x): tcpdump %v, ours %v", id, frames[id][:min(len(frames[id]), 40)], ref[id], ours[id]))
			}
		}
		if len(diffs) > 0 {
			t.Errorf("%q: %d frames differ:\n  %s", c.expr, len(diffs), strings.Join(diffs[:min(len(diffs), 5)], "\n  "))
		}
		accepted += len(ref)
	}
	return accepted, ""
}

// TestLiveRulesSlicing attaches one rule program to a socket and checks
// what the kernel does with its return value: the first matching rule's
// snap length (the packet cut to it), 0 dropping the packet, the default
// for the rest. Each rule's own verdict is the one tested against tcpdump
// above; here the expected rule comes from the rules' separate programs.
func TestLiveRulesSlicing(t *testing.T) {
	ns := newNetns(t)
	rules := []Rule{
		{Expr: "udp portrange 10000-20000", Snap: 60},
		{Expr: "port 22", Snap: 0},
		{Expr: "vlan 100", Snap: 50},
		{Expr: "icmp or icmp6 or arp", Snap: 1000},
	}
	const def = 90
	prog, err := compileRaw(rules, Live, def)
	if err != nil {
		t.Fatal(err)
	}
	var single [][]vmIns
	for _, r := range rules {
		p, err := compileRaw([]Rule{{Expr: r.Expr, Snap: 1}}, Live, 0)
		if err != nil {
			t.Fatal(err)
		}
		vm, _ := newVM(p)
		single = append(single, vm)
	}
	sf := make([]unix.SockFilter, len(prog))
	for j, r := range prog {
		sf[j] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	var fd int
	if err := ns.in(func() error {
		var err error
		fd, err = openFiltered("vb", sf)
		return err
	}); err != nil {
		t.Fatalf("kernel refused the rule program: %v", err)
	}
	defer unix.Close(fd)
	// Frames go one at a time: each kept one is read back and compared
	// byte for byte with what the kernel should deliver (the frame as
	// seen live, cut to the rule's length).
	var frames [][]byte
	for _, f := range buildCorpus(13) {
		if !f.truncated && len(f.data) >= 14 {
			frames = append(frames, f.data)
		}
	}
	hits := make([]int, len(rules)+1)
	buf := make([]byte, 65536)
	if err := ns.in(func() error {
		out, err := openFiltered("va", nil)
		if err != nil {
			return err
		}
		defer unix.Close(out)
		ifi, err := net.InterfaceByName("va")
		if err != nil {
			return err
		}
		for i, f := range frames {
			seen, vl := asSeenLive(f)
			want, hit := uint32(def), len(rules)
			for j, vm := range single {
				if run(vm, seen, len(seen), vl) != 0 {
					want, hit = rules[j].Snap, j
					break
				}
			}
			hits[hit]++
			sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
			copy(sa.Addr[:], f[:6])
			if err := unix.Sendto(out, f, 0, sa); err != nil {
				return fmt.Errorf("sending frame %d: %w", i, err)
			}
			if want == 0 {
				continue // a wrongly kept frame shows up in place of the next one
			}
			wantLen := min(int(want), len(seen))
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if n, _ := unix.Poll(pfd, 5000); n <= 0 {
				return fmt.Errorf("frame %d (% x): rule %d keeps %d bytes, nothing arrived", i, f[:20], hit+1, wantLen)
			}
			m, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
			if err != nil {
				return err
			}
			if m != wantLen || !bytes.Equal(buf[:m], seen[:wantLen]) {
				return fmt.Errorf("frame %d (% x): rule %d keeps %d bytes, the socket got %d bytes (% x)", i, f[:20], hit+1, wantLen, m, buf[:min(m, 20)])
			}
		}
		// Nothing more may arrive: a discarded last frame would.
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, _ := unix.Poll(pfd, 300); n > 0 {
			m, _, _ := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
			return fmt.Errorf("a discarded frame arrived after all: % x", buf[:min(m, 20)])
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, n := range hits {
		if n == 0 {
			t.Errorf("no frame reached rule %d (of %d, the last is the default)", i+1, len(hits))
		}
	}
	t.Logf("%d frames; per rule: %v", len(frames), hits)
}

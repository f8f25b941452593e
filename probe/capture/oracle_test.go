package capture

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/net/bpf"

	"github.com/presscap/presscap/probe/internal/netnstest"
	"github.com/presscap/presscap/ringfs"
)

// memSink keeps everything in memory, for tests.
type memSink struct {
	mu      sync.Mutex
	recs    []ringfs.Record
	drops   map[uint16]uint64
	stall   chan struct{} // while non-nil and open, Append blocks
	failing error
}

func newMemSink() *memSink { return &memSink{drops: map[uint16]uint64{}} }

func (s *memSink) Append(r ringfs.Record) error {
	s.mu.Lock()
	stall, failing := s.stall, s.failing
	s.mu.Unlock()
	if stall != nil {
		<-stall
	}
	if failing != nil {
		return failing
	}
	r.Data = append([]byte(nil), r.Data...)
	s.mu.Lock()
	s.recs = append(s.recs, r)
	s.mu.Unlock()
	return nil
}

func (s *memSink) AddDrops(link uint16, at int64, n uint64) error {
	s.mu.Lock()
	s.drops[link] += n
	s.mu.Unlock()
	return nil
}

func (s *memSink) records(link uint16) []ringfs.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ringfs.Record
	for _, r := range s.recs {
		if r.Link == link {
			out = append(out, r)
		}
	}
	return out
}

// pkt is one captured packet as either side saw it.
type pkt struct {
	time    int64
	origLen int
	data    []byte
}

// tcpdump runs `tcpdump -i` as the oracle, writing nanosecond PCAP.
type tcpdump struct {
	cmd    *exec.Cmd
	file   string
	stderr *bytes.Buffer
}

func startTcpdump(t *testing.T, iface string, snap int, expr string) *tcpdump {
	t.Helper()
	netnstest.Require(t, "tcpdump")
	file := filepath.Join(t.TempDir(), iface+".pcap")
	args := []string{"-i", iface, "-w", file, "-U", "-n", "-Z", "root", "-B", "16384", "--time-stamp-precision=nano", "-s", strconv.Itoa(snap)}
	if expr != "" {
		args = append(args, expr)
	}
	cmd := exec.Command("tcpdump", args...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tcpdump: %v", err)
	}
	pw.Close()
	td := &tcpdump{cmd: cmd, file: file, stderr: &bytes.Buffer{}}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// tcpdump prints "listening on" once its socket is bound and filtered.
	ready := make(chan error, 1)
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			mu.Lock()
			td.stderr.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if !sent && strings.Contains(sc.Text(), "listening on") {
				ready <- nil
				sent = true
			}
		}
		if !sent {
			ready <- fmt.Errorf("tcpdump ended before listening")
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("%v: %s", err, td.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("tcpdump not listening after 10s")
	}
	return td
}

// stop ends tcpdump and returns what it wrote.
func (td *tcpdump) stop(t *testing.T) []pkt {
	t.Helper()
	td.cmd.Process.Signal(syscall.SIGINT)
	td.cmd.Wait()
	return td.read(t)
}

// waitFor waits up to 10s until tcpdump has written n packets (-U writes
// each packet at once), so that stopping it loses nothing it received.
func (td *tcpdump) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if len(td.read(t)) >= n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (td *tcpdump) read(t *testing.T) []pkt {
	t.Helper()
	f, err := os.Open(td.file)
	if err != nil {
		t.Fatalf("tcpdump output: %v", err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("tcpdump output %s: %v", td.file, err)
	}
	var out []pkt
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		out = append(out, pkt{time: ci.Timestamp.UnixNano(), origLen: ci.Length, data: data})
	}
	return out
}

// tcpdumpProgram returns the kernel program libpcap builds for expr on
// iface (tcpdump -ddd), so the capture can be checked against tcpdump
// independently of our own filter compiler.
func tcpdumpProgram(t *testing.T, iface string, snap int, expr string) []bpf.Instruction {
	t.Helper()
	out := netnstest.Run(t, "tcpdump", "-i", iface, "-s", strconv.Itoa(snap), "-ddd", expr)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var raw []bpf.RawInstruction
	for _, ln := range lines[1:] {
		var op uint16
		var jt, jf uint8
		var k uint32
		if _, err := fmt.Sscan(ln, &op, &jt, &jf, &k); err != nil {
			t.Fatalf("tcpdump -ddd line %q: %v", ln, err)
		}
		raw = append(raw, bpf.RawInstruction{Op: op, Jt: jt, Jf: jf, K: k})
	}
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		// Extensions disassemble fine; anything else is kept raw.
		t.Logf("program for %q has instructions x/net/bpf cannot decode", expr)
	}
	return prog
}

// frames builds test traffic: untagged frames of many sizes, 802.1Q tags
// with and without priority, priority-only tags (VLAN 0), and 802.1ad
// double tags, with two EtherTypes so that filters have something to
// choose between.
func frames(n int) [][]byte {
	var out [][]byte
	sizes := []int{60, 64, 99, 100, 101, 103, 104, 105, 128, 500, 1000, 1514}
	for i := 0; i < n; i++ {
		size := sizes[i%len(sizes)]
		etype := uint16(0x88b5)
		if i%3 == 2 {
			etype = 0x88b6
		}
		var hdr []byte
		hdr = append(hdr, 0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, byte(i>>8), byte(i))
		switch i % 6 {
		case 1: // 802.1Q VLAN 10, priority 3
			hdr = binary.BigEndian.AppendUint16(hdr, 0x8100)
			hdr = binary.BigEndian.AppendUint16(hdr, 3<<13|10)
		case 3: // 802.1ad outer VLAN 100, inner 802.1Q VLAN 20
			hdr = binary.BigEndian.AppendUint16(hdr, 0x88a8)
			hdr = binary.BigEndian.AppendUint16(hdr, 100)
			hdr = binary.BigEndian.AppendUint16(hdr, 0x8100)
			hdr = binary.BigEndian.AppendUint16(hdr, 20)
		case 4: // priority tag: VLAN 0, priority 5
			hdr = binary.BigEndian.AppendUint16(hdr, 0x8100)
			hdr = binary.BigEndian.AppendUint16(hdr, 5<<13)
		case 5: // 802.1Q VLAN 10, no priority
			hdr = binary.BigEndian.AppendUint16(hdr, 0x8100)
			hdr = binary.BigEndian.AppendUint16(hdr, 10)
		}
		hdr = binary.BigEndian.AppendUint16(hdr, etype)
		f := make([]byte, size)
		copy(f, hdr)
		for j := len(hdr); j < size; j++ {
			f[j] = byte(i + j)
		}
		binary.BigEndian.PutUint32(f[len(hdr):], uint32(i))
		out = append(out, f)
	}
	return out
}

// startCapture runs a capture in the background; the returned function
// stops it and waits.
func startCapture(t *testing.T, cfg Config, sink Sink) (*Capture, func()) {
	t.Helper()
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	c, err := New(cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("Run did not return 20s after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return c, stop
}

// waitQuiet waits until link 0 has written nothing new for 500 ms.
func waitQuiet(t *testing.T, c *Capture) {
	t.Helper()
	last, since := c.Stats()[0].Written, time.Now()
	for time.Since(since) < 500*time.Millisecond {
		time.Sleep(20 * time.Millisecond)
		if w := c.Stats()[0].Written; w != last {
			last, since = w, time.Now()
		}
	}
}

// waitWritten waits until link i has written want packets.
func waitWritten(t *testing.T, c *Capture, i int, want uint64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c.Stats()[i].Written >= want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("link %s: %d packets written after 15s, want %d (stats %+v)", c.Stats()[i].Name, c.Stats()[i].Written, want, c.Stats()[i])
}

// compare requires the ring's records to be tcpdump's packets, byte for byte.
func compare(t *testing.T, got []ringfs.Record, want []pkt) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("capture recorded %d packets, tcpdump %d", len(got), len(want))
	}
	bad := 0
	for i := 0; i < len(got) && i < len(want); i++ {
		g, w := got[i], want[i]
		if !bytes.Equal(g.Data, w.data) || int(g.OrigLen) != w.origLen {
			bad++
			if bad <= 3 {
				t.Errorf("packet %d differs:\n capture len %d orig %d %x\n tcpdump len %d orig %d %x",
					i, len(g.Data), g.OrigLen, head(g.Data), len(w.data), w.origLen, head(w.data))
			}
		}
		// Both read the same kernel timestamp of the same packet.
		if d := g.Time - w.time; d > int64(time.Millisecond) || d < -int64(time.Millisecond) {
			bad++
			if bad <= 3 {
				t.Errorf("packet %d: capture time %d, tcpdump %d", i, g.Time, w.time)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d packets differ", bad, len(want))
	}
}

func head(b []byte) []byte {
	if len(b) > 24 {
		return b[:24]
	}
	return b
}

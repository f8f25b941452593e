package capture

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/bpf"

	"github.com/presscap/presscap/internal/testing/netnstest"
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
func compare(t *testing.T, got []ringfs.Record, want []netnstest.Packet) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("capture recorded %d packets, tcpdump %d", len(got), len(want))
	}
	bad := 0
	for i := 0; i < len(got) && i < len(want); i++ {
		g, w := got[i], want[i]
		if !bytes.Equal(g.Data, w.Data) || int(g.OrigLen) != w.OrigLen {
			bad++
			if bad <= 3 {
				t.Errorf("packet %d differs:\n capture len %d orig %d %x\n tcpdump len %d orig %d %x",
					i, len(g.Data), g.OrigLen, head(g.Data), len(w.Data), w.OrigLen, head(w.Data))
			}
		}
		// Both read the same kernel timestamp of the same packet.
		if d := g.Time - w.Time; d > int64(time.Millisecond) || d < -int64(time.Millisecond) {
			bad++
			if bad <= 3 {
				t.Errorf("packet %d: capture time %d, tcpdump %d", i, g.Time, w.Time)
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

package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/probe/internal/filter"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/ringfs"
)

// captureCmd runs `probe capture args...` in-process until stop is called.
type captureCmd struct {
	cancel context.CancelFunc
	done   chan error
	// The command writes while the test polls, so the buffers must lock.
	stdout syncBuffer
	stderr syncBuffer
}

func startCaptureCmd(t *testing.T, args ...string) *captureCmd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &captureCmd{cancel: cancel, done: make(chan error, 1)}
	go func() {
		c.done <- dispatch(ctx, env{stdout: &c.stdout, stderr: &c.stderr}, append([]string{"capture"}, args...))
	}()
	t.Cleanup(cancel)
	// The command says so on stderr once every socket is open.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-c.done:
			t.Fatalf("probe capture ended early: %v\n%s", err, c.stderr.String())
		default:
		}
		if strings.Contains(c.stderr.String(), "capturing") {
			return c
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("probe capture did not start: %s", c.stderr.String())
	return nil
}

func (c *captureCmd) stop(t *testing.T) {
	t.Helper()
	c.cancel()
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("probe capture: %v\n%s", err, c.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("probe capture did not stop 20s after the signal")
	}
}

// captureReadRing returns the ring's records of one link, in order.
func captureReadRing(t *testing.T, dir, link string) []ringfs.Record {
	t.Helper()
	r, err := ringfs.Open(dir, ringfs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	id := -1
	for i, l := range r.Links() {
		if l.Name == link {
			id = i
		}
	}
	if id < 0 {
		t.Fatalf("ring has no link %s: %+v", link, r.Links())
	}
	var out []ringfs.Record
	_, err = r.Read(context.Background(), 0, math.MaxInt64, func(rec ringfs.Record) error {
		if int(rec.Link) == id {
			rec.Data = append([]byte(nil), rec.Data...)
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func captureSameAsTcpdump(t *testing.T, got []ringfs.Record, want []netnstest.Packet) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("ring holds %d packets, tcpdump captured %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i].Data, want[i].Data) || int(got[i].OrigLen) != want[i].OrigLen {
			t.Fatalf("packet %d: ring %d/%d bytes %x, tcpdump %d/%d bytes %x", i,
				len(got[i].Data), got[i].OrigLen, got[i].Data[:16], len(want[i].Data), want[i].OrigLen, want[i].Data[:16])
		}
		if d := got[i].Time - want[i].Time; d > int64(time.Millisecond) || d < -int64(time.Millisecond) {
			t.Fatalf("packet %d: ring time %d, tcpdump %d", i, got[i].Time, want[i].Time)
		}
	}
}

// The command end to end on two links at once with slicing: the ring holds
// what tcpdump -s 100 captured on each interface, and the printed counts
// say so.
func TestCaptureCommandTwoLinksSliced(t *testing.T) {
	a, b := netnstest.NewPair(t), netnstest.NewPair(t)
	dir := filepath.Join(t.TempDir(), "ring")
	tda := netnstest.StartTcpdump(t, a.Host, 100, "")
	tdb := netnstest.StartTcpdump(t, b.Host, 100, "")
	cmd := startCaptureCmd(t, "-iface", a.Host+","+b.Host, "-ring", dir, "-size", "64MiB", "-snaplen", "100")
	if err := a.NewSender(t).Send(netnstest.Frames(500)...); err != nil {
		t.Fatal(err)
	}
	if err := b.NewSender(t).Send(netnstest.Frames(250)...); err != nil {
		t.Fatal(err)
	}
	// Once tcpdump has every frame the kernel has delivered them to the
	// capture's sockets too; packets delivered before the signal are still
	// written.
	wa, wb := tda.Settle(t, netnstest.AtLeast(500)), tdb.Settle(t, netnstest.AtLeast(250))
	cmd.stop(t)
	captureSameAsTcpdump(t, captureReadRing(t, dir, a.Host), wa)
	captureSameAsTcpdump(t, captureReadRing(t, dir, b.Host), wb)

	out := cmd.stdout.String()
	for _, want := range []string{a.Host + "  500  0  500", b.Host + "  250  0  250"} {
		if !strings.Contains(strings.Join(strings.Fields(out), "  "), want) {
			t.Errorf("counts do not contain %q:\n%s", want, out)
		}
	}
}

func TestCaptureCommandErrors(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.json")
	os.WriteFile(rules, []byte(`[{"filter": "", "snaplen": 100}, {"filter": "udp", "snaplen": 100, "discard": true}]`), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-ring", dir}, "-iface is required"},
		{[]string{"-iface", "lo"}, "-ring is required"},
		{[]string{"-iface", "lo", "-ring", dir, "-rules", rules, "-filter", "udp"}, "exclude each other"},
		{[]string{"-iface", "lo", "-ring", dir, "-snaplen", "-1"}, "-snaplen -1"},
		{[]string{"-iface", "lo", "-ring", dir, "-size", "12 parsecs"}, "-size"},
		{[]string{"-iface", "lo", "-ring", dir, "-rules", rules}, `rules[1] has both discard and snaplen`},
		{[]string{"-iface", "lo", "-ring", filepath.Join(dir, "new")}, "give -size"},
		{[]string{"-iface", "pcnosuchif0", "-ring", filepath.Join(dir, "r2"), "-size", "64MiB"}, "pcnosuchif0"},
	} {
		var out bytes.Buffer
		err := dispatch(context.Background(), env{stdout: &out, stderr: &out}, append([]string{"capture"}, tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("probe capture %v = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

// captureExtractAll runs `probe extract` over the whole ring for one link and
// reads the PCAP it wrote.
func captureExtractAll(t *testing.T, dir, link string) []ringfs.Record {
	t.Helper()
	out := filepath.Join(t.TempDir(), link+".pcap")
	var msgs bytes.Buffer
	err := dispatch(context.Background(), env{stdout: &msgs, stderr: &msgs}, []string{"extract", "-ring", dir, "-link", link,
		"-from", "2000-01-01T00:00:00Z", "-to", "2100-01-01T00:00:00Z", "-o", out})
	if err != nil {
		t.Fatalf("probe extract: %v\n%s", err, msgs.String())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("probe extract output: %v", err)
	}
	var recs []ringfs.Record
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		recs = append(recs, ringfs.Record{Time: ci.Timestamp.UnixNano(), OrigLen: uint32(ci.Length), Data: data})
	}
	return recs
}

// -filter and -rules end to end, read back with `probe extract`: the PCAP
// holds what tcpdump captured with the same filter and snap length.
func TestCaptureCommandFilterAndRulesThroughExtract(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.json")
	// One rule and "discard the rest": the same as tcpdump -s 64 with the
	// rule's filter.
	os.WriteFile(rules, []byte(`[
		{"filter": "ether proto 0x88b6 or vlan 100", "snaplen": 64},
		{"filter": "", "discard": true}
	]`), 0o644)
	for _, tc := range []struct {
		name, expr string
		snap       int
		args       []string
	}{
		{"filter", "vlan 10 and ether proto 0x88b5", 80, []string{"-filter", "vlan 10 and ether proto 0x88b5", "-snaplen", "80"}},
		{"rules", "ether proto 0x88b6 or vlan 100", 64, []string{"-rules", rules}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := netnstest.NewPair(t)
			dir := filepath.Join(t.TempDir(), "ring")
			td := netnstest.StartTcpdump(t, p.Host, tc.snap, tc.expr)
			cmd := startCaptureCmd(t, append([]string{"-iface", p.Host, "-ring", dir, "-size", "64MiB"}, tc.args...)...)
			frames := netnstest.Frames(390)
			if err := p.NewSender(t).Send(frames...); err != nil {
				t.Fatal(err)
			}
			// The softirq may deliver the frames after Send returns: once
			// tcpdump has the last frame its filter keeps, the kernel has
			// delivered them to the capture's socket too; packets delivered
			// before the signal are still written.
			want := td.Settle(t, netnstest.HasFrame(netnstest.LastKept(liveMatch(t, tc.expr), frames)))
			cmd.stop(t)
			got := captureExtractAll(t, dir, p.Host)
			if len(want) == 0 || len(want) == 390 {
				t.Fatalf("tcpdump kept %d of 390 packets: the filter should keep some, not all", len(want))
			}
			captureSameAsTcpdump(t, got, want)
		})
	}
}

// -inbound records what arrives on the interface and nothing it sends:
// the ring equals tcpdump -Q in.
func TestCaptureCommandInbound(t *testing.T) {
	p := netnstest.NewPair(t)
	dir := filepath.Join(t.TempDir(), "ring")
	td := netnstest.StartTcpdumpInbound(t, p.Host, 262144, "")
	cmd := startCaptureCmd(t, "-iface", p.Host, "-ring", dir, "-size", "64MiB", "-inbound")
	out := netnstest.Frames(100)
	for _, f := range out {
		f[6] = 0x06 // sent by the host end: not to be recorded
	}
	if err := netnstest.NewSenderIn(t, "", p.Host).Send(out...); err != nil {
		t.Fatal(err)
	}
	if err := p.NewSender(t).Send(netnstest.Frames(200)...); err != nil {
		t.Fatal(err)
	}
	want := td.Settle(t, netnstest.AtLeast(200))
	cmd.stop(t)
	if len(want) != 200 {
		t.Fatalf("tcpdump -Q in captured %d frames, want the 200 received", len(want))
	}
	captureSameAsTcpdump(t, captureReadRing(t, dir, p.Host), want)
}

// liveMatch is expr's match on a live interface, as tcpdump -i applies it.
func liveMatch(t testing.TB, expr string) func([]byte) bool {
	t.Helper()
	m, err := filter.NewLiveMatcher(expr)
	if err != nil {
		t.Fatalf("filter %q: %v", expr, err)
	}
	return m.Match
}

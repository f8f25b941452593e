package capture

import (
	"bytes"
	"context"
	"errors"
	"github.com/presscap/presscap/probe/internal/filter"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/ringfs"
)

// sendAndCompare sends frames from the namespace and requires the capture
// to hold exactly what tcpdump captured on the same interface at the same
// time.
func sendAndCompare(t *testing.T, cfg Config, snap int, expr string, n int) {
	t.Helper()
	p := netnstest.NewPair(t)
	cfg.Links = []Link{{Name: p.Host, ID: 7}}
	td := netnstest.StartTcpdump(t, p.Host, snap, expr)
	sink := newMemSink()
	c, stop := startCapture(t, cfg, sink)
	fs := netnstest.Frames(n)
	if err := p.NewSender(t).Send(fs...); err != nil {
		t.Fatal(err)
	}
	// tcpdump settles on the last frame sent that its filter keeps (not on
	// what the capture recorded, which may be short): the kernel has then
	// delivered every frame to the capture's socket too.
	want := td.Settle(t, netnstest.HasFrame(netnstest.LastKept(liveMatch(t, expr), fs)))
	waitQuiet(t, c)
	stop()
	if len(want) == 0 {
		t.Fatalf("tcpdump captured nothing")
	}
	compare(t, sink.records(7), want)
	st := c.Stats()[0]
	if st.Dropped() != 0 || st.Seen != st.Written || st.VLANGuesses != 0 {
		t.Errorf("stats %+v: want no drops, seen == written, every VLAN tag read from the kernel's header", st)
	}
	t.Logf("%d sent, %d captured by both", n, len(want))
}

func TestUntaggedAndVLANWholePackets(t *testing.T) {
	sendAndCompare(t, Config{}, 262144, "", 600)
}

// Slicing without a filter: tcpdump -s 100 against SnapLen 100, with sizes
// around the cut and tags that the kernel strips and we put back.
func TestSnapLen(t *testing.T) {
	sendAndCompare(t, Config{SnapLen: 100}, 100, "", 600)
}

// Rules in the kernel: libpcap's own program for a filter and a snap
// length, attached to our socket, must keep and cut exactly what tcpdump
// keeps and cuts.
func TestKernelProgramFromTcpdump(t *testing.T) {
	for _, tc := range []struct {
		expr string
		snap int
	}{
		{"ether proto 0x88b5", 64},
		{"vlan 10", 1000},
		{"not vlan", 262144},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			netnstest.Require(t, "tcpdump")
			prog := tcpdumpProgram(t, "lo", tc.snap, tc.expr)
			sendAndCompare(t, Config{Program: prog, SnapLen: tc.snap}, tc.snap, tc.expr, 300)
		})
	}
}

func TestTwoLinks(t *testing.T) {
	a, b := netnstest.NewPair(t), netnstest.NewPair(t)
	tda := netnstest.StartTcpdump(t, a.Host, 262144, "")
	tdb := netnstest.StartTcpdump(t, b.Host, 262144, "")
	sink := newMemSink()
	c, stop := startCapture(t, Config{Links: []Link{{Name: a.Host, ID: 1}, {Name: b.Host, ID: 2}}}, sink)
	sa, sb := a.NewSender(t), b.NewSender(t)
	fa, fb := netnstest.Frames(400), netnstest.Frames(300)
	errc := make(chan error, 2)
	go func() { errc <- sa.Send(fa...) }()
	go func() { errc <- sb.Send(fb...) }()
	for i := 0; i < 2; i++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	waitWritten(t, c, 0, 400)
	waitWritten(t, c, 1, 300)
	stop()
	wa, wb := tda.Settle(t, netnstest.AtLeast(400)), tdb.Settle(t, netnstest.AtLeast(300))
	if len(wa) != 400 || len(wb) != 300 {
		t.Errorf("tcpdump saw %d and %d packets, want 400 and 300", len(wa), len(wb))
	}
	compare(t, sink.records(1), wa)
	compare(t, sink.records(2), wb)
}

// An interface set down is brought back up by the capture, and packets
// before and after are all recorded on the same socket.
func TestInterfaceDownUp(t *testing.T) {
	p := netnstest.NewPair(t)
	sink := newMemSink()
	c, stop := startCapture(t, Config{Links: []Link{{Name: p.Host, ID: 3}}}, sink)
	s := p.NewSender(t)
	before := netnstest.Frames(50)
	if err := s.Send(before...); err != nil {
		t.Fatal(err)
	}
	waitWritten(t, c, 0, 50)
	p.SetUp(t, false)
	waitUp(t, p.Host)
	p.WaitCarrier(t)
	after := netnstest.Frames(80)
	if err := s.Send(after...); err != nil {
		t.Fatal(err)
	}
	waitWritten(t, c, 0, 130)
	stop()
	got := sink.records(3)
	if len(got) != 130 {
		t.Fatalf("recorded %d packets, want 130", len(got))
	}
	checkSame(t, got[:50], before)
	checkSame(t, got[50:], after)
	if st := c.Stats()[0]; st.Reopens != 0 || st.Dropped() != 0 {
		t.Errorf("stats %+v: want no reopen, no drops", st)
	}
}

// An interface deleted and created again (a USB adapter unplugged and
// plugged back, coming back DOWN with a new ifindex) is reopened, brought
// up, and recorded under the same link.
func TestInterfaceUnplugReplug(t *testing.T) {
	p := netnstest.NewPair(t)
	sink := newMemSink()
	c, stop := startCapture(t, Config{Links: []Link{{Name: p.Host, ID: 4}}}, sink)
	before := netnstest.Frames(40)
	if err := p.NewSender(t).Send(before...); err != nil {
		t.Fatal(err)
	}
	waitWritten(t, c, 0, 40)
	p.Unplug(t)
	testtool.WaitFor(t, "the capture to notice "+p.Host+" disappear", 20*time.Second, func() bool { return !c.Stats()[0].Open })
	p.Replug(t, false)
	deadline := time.Now().Add(20 * time.Second)
	for c.Stats()[0].Reopens == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if c.Stats()[0].Reopens != 1 {
		t.Fatalf("capture did not reopen the interface: %+v", c.Stats()[0])
	}
	waitOpen(t, c)
	waitUp(t, p.Host)
	p.WaitCarrier(t)
	after := netnstest.Frames(70)
	if err := p.NewSender(t).Send(after...); err != nil {
		t.Fatal(err)
	}
	waitWritten(t, c, 0, 110)
	stop()
	got := sink.records(4)
	if len(got) != 110 {
		t.Fatalf("recorded %d packets, want 110", len(got))
	}
	checkSame(t, got[:40], before)
	checkSame(t, got[40:], after)
}

// A sink that stalls must not stop the readers: once the in-memory buffer
// is full, packets are counted as backlog drops, the drops reach the sink
// by AddDrops, and every packet the kernel saw is accounted for.
func TestStalledSinkCountsDrops(t *testing.T) {
	p := netnstest.NewPair(t)
	sink := newMemSink()
	release := make(chan struct{})
	sink.stall = release
	c, stop := startCapture(t, Config{Links: []Link{{Name: p.Host, ID: 5}}, Buffer: 2 * batchSize}, sink)
	fs := netnstest.Frames(20000) // about 6.5 MB: more than the 2 MiB buffer
	if err := p.NewSender(t).Send(fs...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for c.Stats()[0].BacklogDrops == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	sink.mu.Lock()
	sink.stall = nil
	sink.mu.Unlock()
	close(release)
	time.Sleep(500 * time.Millisecond)
	stop()
	st := c.Stats()[0]
	if st.BacklogDrops == 0 {
		t.Fatalf("no backlog drops with a stalled sink: %+v", st)
	}
	if st.Seen != 20000 {
		t.Errorf("kernel saw %d packets, want 20000", st.Seen)
	}
	if st.Written+st.Dropped() != st.Seen {
		t.Errorf("written %d + dropped %d != seen %d", st.Written, st.Dropped(), st.Seen)
	}
	if got := uint64(len(sink.records(5))); got != st.Written {
		t.Errorf("sink holds %d packets, stats say %d written", got, st.Written)
	}
	if sink.drops[5] != st.Dropped() {
		t.Errorf("sink was told of %d drops, stats say %d", sink.drops[5], st.Dropped())
	}
	// What was written are sent frames, whole and in order.
	last := -1
	for _, r := range sink.records(5) {
		id := int(r.Data[10])<<8 | int(r.Data[11])
		if id <= last || id >= len(fs) || !bytes.Equal(r.Data, fs[id]) {
			t.Fatalf("record after frame %d is not the next sent frame: %x", last, head(r.Data))
		}
		last = id
	}
	t.Logf("stats %+v", st)
}

// Sink errors lose the packets but are counted, and capture goes on.
func TestSinkErrorsCounted(t *testing.T) {
	p := netnstest.NewPair(t)
	sink := newMemSink()
	sink.failing = errors.New("disk gone")
	c, stop := startCapture(t, Config{Links: []Link{{Name: p.Host, ID: 6}}}, sink)
	if err := p.NewSender(t).Send(netnstest.Frames(20)...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for c.Stats()[0].WriteDrops < 20 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if st := c.Stats()[0]; st.WriteDrops != 20 || st.Written != 0 {
		t.Errorf("stats %+v: want 20 write drops", st)
	}
	if c.Err() == nil || c.Err().Error() != "disk gone" {
		t.Errorf("Err() = %v, want the sink's error", c.Err())
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no links"},
		{Config{Links: []Link{{Name: ""}}}, "empty interface name"},
		{Config{Links: []Link{{Name: "a"}, {Name: "a", ID: 1}}}, `"a" named twice`},
		{Config{Links: []Link{{Name: "a"}, {Name: "b"}}}, "link id 0 used twice"},
		{Config{Links: []Link{{Name: "this-is-too-long-for-linux"}}}, "longer than 15"},
		{Config{Links: []Link{{Name: "pcnosuchif0"}}}, "pcnosuchif0"},
		{Config{Links: []Link{{Name: "lo"}}, Buffer: batchSize}, "buffer"},
	} {
		_, err := New(tc.cfg, newMemSink())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error mentioning %q", tc.cfg, err, tc.want)
		}
	}
}

// checkSame requires records to be the frames sent, in order.
func checkSame(t *testing.T, got []ringfs.Record, sent [][]byte) {
	t.Helper()
	for i := range got {
		if !bytes.Equal(got[i].Data, sent[i]) || int(got[i].OrigLen) != len(sent[i]) {
			t.Fatalf("record %d: %x (orig %d), sent %x", i, head(got[i].Data), got[i].OrigLen, head(sent[i]))
		}
	}
}

// waitOpen waits until link 0's socket is open.
func waitOpen(t *testing.T, c *Capture) {
	t.Helper()
	testtool.WaitFor(t, "link "+c.Stats()[0].Name+" to open", 20*time.Second, func() bool { return c.Stats()[0].Open })
}

// waitUp waits until the capture has brought an interface back up.
func waitUp(t *testing.T, name string) {
	t.Helper()
	testtool.WaitFor(t, name+" to be brought up", 20*time.Second, func() bool {
		info, err := lookupIface(name)
		return err == nil && info.up
	})
}

// Filters compiled by our own compiler (probe/internal/filter, Live mode) keep and
// cut on the socket exactly what tcpdump keeps and cuts with the same
// filter and snap length.
func TestCompiledFilterMatchesTcpdump(t *testing.T) {
	for _, tc := range []struct {
		expr string
		snap int
	}{
		{"vlan 10 and ether proto 0x88b5", 80},
		{"ether proto 0x88b6 or vlan 100", 64},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			prog, snap, err := CompileFilter(tc.expr, uint32(tc.snap))
			if err != nil {
				t.Fatal(err)
			}
			sendAndCompare(t, Config{Program: prog, SnapLen: snap}, tc.snap, tc.expr, 390)
		})
	}
}

// Ring rules with different snap lengths: the first matching rule decides,
// snap 0 discards, unmatched packets are cut to the default. The oracle is
// one tcpdump per rule plus one without a filter, all on the same interface
// at the same time: a packet must appear as the tcpdump of its first
// matching rule captured it.
func TestRulesMatchTcpdumpPerRule(t *testing.T) {
	rules := []Rule{{Filter: "vlan 10", Snaplen: 64}, {Filter: "ether proto 0x88b6", Discard: true}}
	const defaultSnap = 100
	prog, snap, err := CompileRules(rules, defaultSnap)
	if err != nil {
		t.Fatal(err)
	}
	p := netnstest.NewPair(t)
	all := netnstest.StartTcpdump(t, p.Host, defaultSnap, "")
	var per []*netnstest.Tcpdump
	for _, r := range rules {
		s := int(r.Snaplen)
		if s == 0 {
			s = MaxSnap
		}
		per = append(per, netnstest.StartTcpdump(t, p.Host, s, r.Filter))
	}
	sink := newMemSink()
	c, stop := startCapture(t, Config{Links: []Link{{Name: p.Host, ID: 9}}, Program: prog, SnapLen: snap}, sink)
	const n = 390
	frames := netnstest.Frames(n)
	if err := p.NewSender(t).Send(frames...); err != nil {
		t.Fatal(err)
	}
	waitQuiet(t, c)
	stop()
	// Each tcpdump settles on what was sent: the unfiltered one on every
	// frame, a rule's on the last frame sent that its filter keeps on the
	// interface (each rule matches some frames: checked below).
	allPackets := all.Settle(t, netnstest.AtLeast(n))
	id := netnstest.FrameID
	byRule := make([]map[int]netnstest.Packet, len(rules))
	for i, td := range per {
		byRule[i] = map[int]netnstest.Packet{}
		for _, pk := range td.Settle(t, netnstest.HasFrame(netnstest.LastKept(liveMatch(t, rules[i].Filter), frames))) {
			byRule[i][id(pk.Data)] = pk
		}
	}
	var want []netnstest.Packet
	sliced, discarded := 0, 0
	for _, pk := range allPackets {
		keep := pk
		for i, r := range rules {
			if m, ok := byRule[i][id(pk.Data)]; ok {
				if r.Discard {
					keep.Data = nil
					discarded++
				} else {
					keep = m
					sliced++
				}
				break
			}
		}
		if keep.Data != nil {
			want = append(want, keep)
		}
	}
	if sliced == 0 || discarded == 0 || len(want) == sliced {
		t.Fatalf("traffic does not exercise the rules: %d sliced, %d discarded, %d kept", sliced, discarded, len(want))
	}
	compare(t, sink.records(9), want)
	t.Logf("%d packets: %d by rule 0, %d discarded by rule 1, %d by default", n, sliced, discarded, len(want)-sliced)
}

// With WaitForLinks a capture starts before its interface exists (a USB
// adapter plugged in after boot) and records it once it appears.
func TestWaitForLinks(t *testing.T) {
	p := netnstest.NewPair(t)
	p.Unplug(t)
	if _, err := New(Config{Links: []Link{{Name: p.Host, ID: 1}}}, newMemSink()); err == nil {
		t.Fatalf("New without WaitForLinks accepted missing interface %s", p.Host)
	}
	sink := newMemSink()
	c, stop := startCapture(t, Config{Links: []Link{{Name: p.Host, ID: 1}}, WaitForLinks: true}, sink)
	time.Sleep(700 * time.Millisecond)
	p.Replug(t, false)
	waitOpen(t, c)
	waitUp(t, p.Host)
	p.WaitCarrier(t)
	fs := netnstest.Frames(30)
	if err := p.NewSender(t).Send(fs...); err != nil {
		t.Fatal(err)
	}
	waitWritten(t, c, 0, 30)
	stop()
	checkSame(t, sink.records(1), fs)
}

type fakeAdder struct{ links []ringfs.Link }

func (f *fakeAdder) AddLink(l ringfs.Link) (uint16, error) {
	f.links = append(f.links, l)
	return uint16(len(f.links) + 10), nil
}

func TestAddLinks(t *testing.T) {
	var f fakeAdder
	links, err := AddLinks(&f, []string{"lo", "pcnosuchif0"}, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []Link{{Name: "lo", ID: 11}, {Name: "pcnosuchif0", ID: 12}}
	if len(links) != 2 || links[0] != want[0] || links[1] != want[1] {
		t.Errorf("links %+v, want %+v", links, want)
	}
	for _, l := range f.links {
		if l.LinkType != LinkTypeEthernet || l.SnapLen != MaxSnap {
			t.Errorf("registered %+v: want Ethernet, snap %d", l, MaxSnap)
		}
	}
	if _, err := AddLinks(&f, []string{"pcnosuchif0"}, 0, true); err == nil || !strings.Contains(err.Error(), "pcnosuchif0") {
		t.Errorf("AddLinks(mustExist) with a missing interface: %v", err)
	}
}

// stallingRing is a real ring whose appends block until released, like a
// disk that stops answering for a while.
type stallingRing struct {
	*ringfs.Ring
	release chan struct{}
}

func (s *stallingRing) Append(r ringfs.Record) error {
	<-s.release
	return s.Ring.Append(r)
}

// Drops end up in the ring by time: a window read back says how many
// packets were lost inside it, and the ring's totals match the capture's.
func TestDropsReachTheRing(t *testing.T) {
	ring, err := ringfs.Create(filepath.Join(t.TempDir(), "ring"), ringfs.Options{Size: ringfs.MinSize})
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	p := netnstest.NewPair(t)
	links, err := AddLinks(ring, []string{p.Host}, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	sink := &stallingRing{Ring: ring, release: make(chan struct{})}
	c, stop := startCapture(t, Config{Links: links, Buffer: 2 * batchSize}, sink)
	start := time.Now().UnixNano()
	if err := p.NewSender(t).Send(netnstest.Frames(20000)...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for c.Stats()[0].BacklogDrops == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	close(sink.release)
	time.Sleep(500 * time.Millisecond)
	stop()
	end := time.Now().UnixNano()
	st := c.Stats()[0]
	if st.Dropped() == 0 || st.Written+st.Dropped() != 20000 {
		t.Fatalf("stats %+v: want drops, and written + dropped = 20000 sent", st)
	}
	var n uint64
	rs, err := ring.Read(context.Background(), start, end, func(ringfs.Record) error { n++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if rs.Drops != st.Dropped() || rs.Packets != st.Written || n != st.Written {
		t.Errorf("window read: %d packets, %+v; capture: %+v", n, rs, st)
	}
	// Outside the window of the traffic there is nothing, drops included.
	if rs, _ := ring.Read(context.Background(), 0, start, func(ringfs.Record) error { return nil }); rs.Drops != 0 || rs.Packets != 0 {
		t.Errorf("before the traffic the ring holds %+v", rs)
	}
	info, err := ring.Info()
	if err != nil || info.Drops != st.Dropped() {
		t.Errorf("ring info drops %d (%v), capture dropped %d", info.Drops, err, st.Dropped())
	}
}

// The capture turns generic receive offload off on its interfaces (frames
// as received, not merged), unless told to keep it.
func TestGROTurnedOff(t *testing.T) {
	netnstest.Require(t, "ethtool")
	gro := func(dev string) string {
		for _, ln := range strings.Split(netnstest.Run(t, "ethtool", "-k", dev), "\n") {
			if strings.HasPrefix(ln, "generic-receive-offload:") {
				return strings.Fields(ln)[1]
			}
		}
		t.Fatalf("ethtool -k %s shows no generic-receive-offload", dev)
		return ""
	}
	for _, keep := range []bool{false, true} {
		p := netnstest.NewPair(t)
		netnstest.Run(t, "ethtool", "-K", p.Host, "gro", "on")
		if g := gro(p.Host); g != "on" {
			t.Fatalf("could not turn GRO on for the test: %s", g)
		}
		_, stop := startCapture(t, Config{Links: []Link{{Name: p.Host, ID: 1}}, KeepGRO: keep}, newMemSink())
		want := "off"
		if keep {
			want = "on"
		}
		if g := gro(p.Host); g != want {
			t.Errorf("KeepGRO %v: GRO is %s, want %s", keep, g, want)
		}
		stop()
	}
}

// Stopping while traffic flows: the final counts still add up, because the
// capture reads exactly what the kernel had queued when the stop came.
func TestStopWhileSending(t *testing.T) {
	p := netnstest.NewPair(t)
	sink := newMemSink()
	c, stop := startCapture(t, Config{Links: []Link{{Name: p.Host, ID: 2}}}, sink)
	s := p.NewSender(t)
	fs := netnstest.Frames(1000)
	quit := make(chan struct{})
	sent := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-quit:
				sent <- n
				return
			default:
			}
			if err := s.Send(fs[n%len(fs)]); err != nil {
				t.Error(err)
			}
			n++
			if n%200 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	time.Sleep(700 * time.Millisecond)
	stop()
	close(quit)
	n := <-sent
	st := c.Stats()[0]
	if st.Written == 0 || st.Seen != st.Written+st.Dropped() {
		t.Errorf("stats %+v: want seen = written + dropped", st)
	}
	if got := uint64(len(sink.records(2))); got != st.Written {
		t.Errorf("sink holds %d packets, stats say %d written", got, st.Written)
	}
	t.Logf("sent %d, stats %+v", n, st)
}

// An inbound-only link records what arrives and none of what the
// interface sends, equal to tcpdump -Q in on the same interface; tcpdump
// without it shows the sent frames were there.
func TestInboundOnly(t *testing.T) {
	p := netnstest.NewPair(t)
	tdIn := netnstest.StartTcpdumpInbound(t, p.Host, 262144, "")
	tdAll := netnstest.StartTcpdump(t, p.Host, 262144, "")
	sink := newMemSink()
	c, stop := startCapture(t, Config{Links: []Link{{Name: p.Host, ID: 4, Inbound: true}}}, sink)
	in, out := netnstest.Frames(300), netnstest.Frames(200)
	for _, f := range out {
		f[6] = 0x06 // another source address: sent, not received
	}
	errc := make(chan error, 2)
	go func() { errc <- p.NewSender(t).Send(in...) }()
	go func() { errc <- netnstest.NewSenderIn(t, "", p.Host).Send(out...) }()
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	waitWritten(t, c, 0, 300)
	all := tdAll.Settle(t, netnstest.AtLeast(500))
	want := tdIn.Settle(t, netnstest.AtLeast(300))
	waitQuiet(t, c)
	stop()
	if len(all) != 500 || len(want) != 300 {
		t.Fatalf("tcpdump saw %d frames in all and %d inbound, want 500 and 300", len(all), len(want))
	}
	compare(t, sink.records(4), want)
}

// A link with NotTo records nothing addressed to that MAC address (the
// probe's own bridge), tagged or not, and everything else cut by the
// ring rules: what tcpdump sees with "not ether dst" and the same rule.
func TestNotTo(t *testing.T) {
	p := netnstest.NewPair(t)
	own := [6]byte{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}
	prog, snap, err := CompileRules([]Rule{{Filter: "ether proto 0x88b6", Discard: true}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	td := netnstest.StartTcpdump(t, p.Host, 262144, "not ether dst 02:aa:bb:cc:dd:ee and not ether proto 0x88b6")
	sink := newMemSink()
	c, stop := startCapture(t, Config{Links: []Link{{Name: p.Host, ID: 4, Inbound: true, NotTo: own}}, Program: prog, SnapLen: snap}, sink)
	frames := netnstest.Frames(300)
	for i, f := range frames {
		if i%3 == 0 {
			copy(f, own[:])
		}
	}
	if err := p.NewSender(t).Send(frames...); err != nil {
		t.Fatal(err)
	}
	// Frames 3k are to the own address, most of 3k+2 (0x88b6) are
	// discarded; 298 is the last kept.
	want := td.Settle(t, netnstest.HasFrame(298))
	waitWritten(t, c, 0, uint64(len(want)))
	waitQuiet(t, c)
	stop()
	for _, p := range want {
		if bytes.Equal(p.Data[:6], own[:]) {
			t.Fatalf("tcpdump's oracle kept a frame to the own address")
		}
	}
	if len(want) < 100 || len(want) >= 200 {
		t.Fatalf("tcpdump saw %d frames, want 100 to 199", len(want))
	}
	compare(t, sink.records(4), want)
}

// On the two ports of a bridge, inbound-only links record every crossing
// frame exactly once, on the link of the side it came from: what tcpdump
// -Q in sees on each port, while plain tcpdump on a port also sees the
// other side's frames leave.
func TestBridgePortsInbound(t *testing.T) {
	netnstest.Require(t, "ip", "sysctl")
	a, b := netnstest.NewPair(t), netnstest.NewPair(t)
	br := "pcbr" + netnstest.RandomSuffix(6)
	netnstest.Run(t, "ip", "link", "add", br, "type", "bridge", "stp_state", "0", "forward_delay", "0")
	t.Cleanup(func() { netnstest.Run(t, "ip", "link", "del", br) })
	netnstest.Run(t, "sysctl", "-q", "-w", "net.ipv6.conf."+br+".disable_ipv6=1")
	for _, p := range []string{a.Host, b.Host} {
		netnstest.Run(t, "ip", "link", "set", p, "master", br)
	}
	netnstest.Run(t, "ip", "link", "set", br, "up")
	inA, inB := netnstest.StartTcpdumpInbound(t, a.Host, 262144, ""), netnstest.StartTcpdumpInbound(t, b.Host, 262144, "")
	allA := netnstest.StartTcpdump(t, a.Host, 262144, "")
	sink := newMemSink()
	c, stop := startCapture(t, Config{Links: []Link{{Name: a.Host, ID: 1, Inbound: true}, {Name: b.Host, ID: 2, Inbound: true}}}, sink)
	// Broadcast, so that the bridge floods each frame to the other side
	// whatever source addresses it has learnt.
	fromA, fromB := netnstest.Frames(300), netnstest.Frames(200)
	for _, f := range fromA {
		copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	}
	for _, f := range fromB {
		copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x06})
	}
	errc := make(chan error, 2)
	go func() { errc <- a.NewSender(t).Send(fromA...) }()
	go func() { errc <- b.NewSender(t).Send(fromB...) }()
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	waitWritten(t, c, 0, 300)
	waitWritten(t, c, 1, 200)
	wantA, wantB := inA.Settle(t, netnstest.AtLeast(300)), inB.Settle(t, netnstest.AtLeast(200))
	crossed := 0
	for _, p := range allA.Settle(t, netnstest.AtLeast(500)) {
		if len(p.Data) > 6 && p.Data[6] == 0x06 {
			crossed++
		}
	}
	if crossed != 200 {
		t.Errorf("plain tcpdump on port A saw %d of B's frames leave, want 200", crossed)
	}
	stop()
	if len(wantA) != 300 || len(wantB) != 200 {
		t.Fatalf("tcpdump -Q in saw %d and %d frames, want 300 and 200", len(wantA), len(wantB))
	}
	compare(t, sink.records(1), wantA)
	compare(t, sink.records(2), wantB)
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

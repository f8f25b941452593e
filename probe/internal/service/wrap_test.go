package service

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/internal/export"
	"github.com/presscap/presscap/probe/internal/pcapfile"
	"github.com/presscap/presscap/probe/internal/storage"
	"github.com/presscap/presscap/probe/internal/window"
	"github.com/presscap/presscap/ringfs"
)

// Jumbo frames at a fixed rate fill the smallest ring (64 MiB) in about
// two seconds with few enough packets for tcpdump and the capture on a
// shared machine: 2000 frames/s of 16000 bytes, 32 MB/s.
const (
	wrapFrameLen = 16000
	wrapRate     = 2000
	// The oracle's kernel buffer holds 8 s of that line, so a loaded
	// runner that stalls tcpdump's writer does not make it miss frames
	// the probe kept.
	oracleBufKiB = 256 << 10
)

// writeJumboPcap writes n jumbo frames, each numbered, for tcpreplay.
func writeJumboPcap(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jumbo.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := pcapfile.NewPCAP(f, 1, 65535)
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, wrapFrameLen)
	copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 9, 0x88, 0xb5})
	for i := range n {
		binary.BigEndian.PutUint32(frame[14:], uint32(i))
		if err := w.WritePacket(int64(i)*int64(time.Second/wrapRate), wrapFrameLen, frame); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFastLineKeepsWindow: a line fast enough that the ring holds only
// about 2 s of it. With 1 s before and 1 s after the press, the ring has
// overwritten the window's start well before the window ends; the files
// still hold the whole window, equal to what tcpdump -i saw in it. With
// more before than the ring holds, the files begin at the ring's oldest
// packet at the press, and the manifest says so (truncated, ring_oldest,
// reason ring_did_not_reach_back).
//
// On a loaded runner the save may copy the ring slower than the line fills
// it, and the writer overtakes it: the oldest segment at the press is
// rewritten about 0.1 s after it, so a save that begins late loses it.
// Such an attempt must be honest (the manifest names
// writer_overtook_reader, missing covers every hole, the file holds only
// packets tcpdump saw, in order), but it shows nothing about keeping the
// window, so the press is made again, up to fastLineAttempts times.
func TestFastLineKeepsWindow(t *testing.T) {
	netnstest.Require(t, "ip", "tcpdump", "tcpreplay", "capinfos", "tshark")
	pcap := writeJumboPcap(t, 3000)
	for _, tc := range []struct {
		name   string
		before time.Duration
		whole  bool
	}{{"before 1s", time.Second, true}, {"before 4s, longer than the ring", 4 * time.Second, false}} {
		t.Run(tc.name, func(t *testing.T) {
			var overtaken []string
			for i := 1; i <= fastLineAttempts; i++ {
				note := ""
				t.Run(fmt.Sprintf("attempt %d", i), func(t *testing.T) { note = fastLineWindow(t, pcap, tc.before, tc.whole) })
				if note == "" {
					return // kept, or failed for another reason
				}
				t.Logf("attempt %d: the writer overtook the save: %s", i, note)
				overtaken = append(overtaken, note)
			}
			t.Errorf("the writer overtook the save in all %d attempts: %s", len(overtaken), strings.Join(overtaken, "; "))
		})
	}
}

// fastLineAttempts is how many windows TestFastLineKeepsWindow tries
// while the writer overtakes the save: on a 2-core runner shared by 8 test
// runs (load 11-16) it overtook 1 before_4s attempt in 4 to 6, at load 21
// 4 in 5.
const fastLineAttempts = 4

// fastLineWindow is one attempt of TestFastLineKeepsWindow: it returns
// what the writer overtook, or "" if it overtook nothing.
func fastLineWindow(t *testing.T, pcap string, before time.Duration, whole bool) string {
	pair := jumboPair(t)
	c := permConfig(t, pair.Host)
	c.Trigger.Before = config.Duration(before)
	c.Trigger.After = config.Duration(time.Second)
	c.Exports = []config.Export{{Name: "all"}}
	oracle := netnstest.StartTcpdumpBuffer(t, pair.Host, 262144, "", oracleBufKiB)
	r := startService(t, c, nil)
	testtool.WaitFor(t, "recording", 20*time.Second, func() bool { return r.svc.Storage().State().State == storage.DiskRecording })

	// 6 loops of 1.5 s: the ring wraps after about 2 s; the
	// press comes at 3.5 s, its window ends at 4.5 s, the
	// traffic at 9 s. Counted from the first packet: a loaded runner
	// may take a second to start tcpreplay (it loads 48 MB first).
	replay := startReplay(t, pair, pcap, wrapRate, 6)
	var start int64
	oldest := func() int64 {
		ring, _, err := r.svc.Storage().Ring()
		if err != nil {
			return 0
		}
		in, err := ring.Info()
		if err != nil {
			return 0
		}
		return in.Oldest
	}
	testtool.WaitFor(t, "the first packets", 20*time.Second, func() bool { start = oldest(); return start != 0 })
	testtool.WaitFor(t, "the ring to wrap", 20*time.Second, func() bool { return oldest() > start+int64(500*time.Millisecond) })
	time.Sleep(time.Until(time.Unix(0, start).Add(3500 * time.Millisecond)))
	ring, _, err := r.svc.Storage().Ring()
	if err != nil {
		t.Fatal(err)
	}
	atPress, err := ring.Info()
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.svc.Trigger("local", "")
	if err != nil {
		t.Fatal(err)
	}
	from, to := p.Time.Add(-before), p.Time.Add(time.Second)
	res := r.waitExport(t, 30*time.Second)
	if res.err != nil {
		t.Fatalf("export: %v\nlog:\n%s", res.err, r.log)
	}
	replay.wait(t)
	seen := oracle.Settle(t, func(ps []netnstest.Packet) bool {
		return len(ps) > 0 && ps[len(ps)-1].Time >= to.UnixNano()
	})
	m := res.man
	got := readPCAP(t, filepath.Join(c.Storage.PermDir, c.Storage.QueueDir, m.Files[0].File))
	if len(got) == 0 {
		t.Fatalf("empty file; log:\n%s", r.log)
	}
	overtaken := slices.Contains(m.Reasons, ringfs.ReasonOvertaken)
	first := from.UnixNano()
	if whole {
		if m.Truncated && !(overtaken && len(m.Reasons) == 1) {
			t.Errorf("manifest: truncated (%v, %s missing, ring_oldest %v), want the whole window", m.Reasons, m.Missing, m.RingOldest)
		}
	} else {
		// The ring's oldest packet just before the press and
		// just after: the follower read it between the two.
		after, _ := ring.Info()
		if !m.Truncated || m.Reason != ringfs.ReasonNotReached || m.RingOldest.UnixNano() < atPress.Oldest ||
			m.RingOldest.UnixNano() > after.Oldest || got[0].ts != m.RingOldest.UnixNano() {
			t.Errorf("manifest truncated %v reason %q ring_oldest %v, file begins %v; want %q, ring_oldest between %v and %v where the file begins",
				m.Truncated, m.Reason, m.RingOldest, time.Unix(0, got[0].ts).UTC(), ringfs.ReasonNotReached,
				time.Unix(0, atPress.Oldest).UTC(), time.Unix(0, after.Oldest).UTC())
		}
		first = m.RingOldest.UnixNano()
	}
	if m.Drops != 0 {
		t.Errorf("the capture dropped %d packets in the window", m.Drops)
	}
	if overtaken {
		return overtakenHonestly(t, m, got, seen, from.UnixNano(), first, to.UnixNano())
	}
	if !samePackets(t, got, m.Files[0].Packets, seen, first, to.UnixNano(), wrapRate) {
		// Kernel drops are stored when the capture notices them (once a
		// second), which may be after the window: the capture's own count.
		t.Logf("capture: %+v", r.svc.Snapshot().Links)
	}
	return ""
}

// overtakenHonestly checks a window whose save the writer overtook: the
// file holds packets tcpdump saw in [first, to), in order, from first
// on, and the manifest's missing covers the time before first (from
// from) and every run of packets the file lacks. It returns what was lost.
func overtakenHonestly(t *testing.T, m export.Manifest, got []pkt, seen []netnstest.Packet, from, first, to int64) string {
	t.Helper()
	var want []netnstest.Packet
	for _, p := range seen {
		if p.Time >= first && p.Time < to {
			want = append(want, p)
		}
	}
	j, holes, lost := 0, 0, 0
	var holeTime int64
	hole := func(a, b int) { // want[a:b] is not in the file
		if b > a {
			holes++
			lost += b - a
			holeTime += want[b-1].Time - want[a].Time
		}
	}
	for i, g := range got {
		k := j
		for k < len(want) && (want[k].Time != g.ts || !bytes.Equal(want[k].Data, g.data)) {
			k++
		}
		if k == len(want) {
			t.Errorf("the writer overtook the save, and file packet %d (at %v) is not one tcpdump saw in the window after the file's %d before it",
				i, time.Unix(0, g.ts).UTC(), i)
			return ""
		}
		if i == 0 && k != 0 {
			t.Errorf("the file begins at %v, after %d packets tcpdump saw from %v", time.Unix(0, g.ts).UTC(), k, time.Unix(0, first).UTC())
		}
		hole(j, k)
		j = k + 1
	}
	hole(j, len(want))
	missing, err := time.ParseDuration(m.Missing)
	// The manifest counts the time range of each block lost, which falls
	// short of the hole's by the steps between blocks (one in 65 packets
	// here); missing is rounded to the millisecond.
	lack := time.Duration(first-from) + time.Duration(holeTime)*9/10 - time.Millisecond
	if err != nil || missing < lack || missing > time.Duration(to-from)+time.Millisecond {
		t.Errorf("the writer overtook the save: the file lacks %d packets in %d holes (%v) after %v, %v before; manifest missing %q, want at least %v and at most the window's %v",
			lost, holes, time.Duration(holeTime), time.Unix(0, first).UTC(), time.Duration(first-from), m.Missing, lack, time.Duration(to-from))
	}
	return fmt.Sprintf("%d packets in %d holes (%v), manifest reasons %v, missing %s", lost, holes, time.Duration(holeTime), m.Reasons, m.Missing)
}

// jumboPair is a veth pair whose MTU takes the jumbo frames.
func jumboPair(t *testing.T) *netnstest.Pair {
	pair := netnstest.NewPair(t)
	mtu := strconv.Itoa(wrapFrameLen + 100)
	netnstest.Run(t, "ip", "link", "set", "dev", pair.Host, "mtu", mtu)
	pair.Exec(t, "ip", "link", "set", "dev", pair.Peer, "mtu", mtu)
	return pair
}

// replay is tcpreplay sending into a pair from its namespace.
type replay struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

// startReplay sends pcap loops times at pps packets a second.
func startReplay(t *testing.T, pair *netnstest.Pair, pcap string, pps, loops int) *replay {
	r := &replay{cmd: exec.Command("ip", "netns", "exec", pair.NS, "tcpreplay", "-q", "-K",
		"--pps", strconv.Itoa(pps), "--loop", strconv.Itoa(loops), "-i", pair.Peer, pcap)}
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.cmd.Process.Kill(); r.cmd.Wait() })
	return r
}

func (r *replay) wait(t *testing.T) {
	if err := r.cmd.Wait(); err != nil {
		t.Fatalf("tcpreplay: %v\n%s", err, r.out.String())
	}
}

// samePackets compares a window's file (n packets by its manifest) with
// what tcpdump saw in [from, to), packet for packet; tcpdump must have seen
// at least least of them. It says whether they were the same.
func samePackets(t *testing.T, got []pkt, n uint64, seen []netnstest.Packet, from, to int64, least int) bool {
	t.Helper()
	var want []pkt
	for _, p := range seen {
		if p.Time >= from && p.Time < to {
			want = append(want, pkt{p.Time, uint32(p.OrigLen), p.Data})
		}
	}
	span := func(ps []pkt) string {
		if len(ps) == 0 {
			return "none"
		}
		return fmt.Sprintf("%v .. %v", time.Unix(0, ps[0].ts).UTC(), time.Unix(0, ps[len(ps)-1].ts).UTC())
	}
	if len(want) < least {
		t.Fatalf("tcpdump saw only %d packets in the window (%s)", len(want), span(want))
	}
	ok := true
	if len(got) != len(want) || n != uint64(len(got)) {
		t.Errorf("file has %d packets (%s), manifest %d; tcpdump saw %d (%s)", len(got), span(got), n, len(want), span(want))
		ok = false
	}
	for i := 0; i < min(len(got), len(want)); i++ {
		if got[i].ts != want[i].ts || got[i].origLen != want[i].origLen || !bytes.Equal(got[i].data, want[i].data) {
			t.Errorf("packet %d differs: file ts %d, tcpdump ts %d", i, got[i].ts, want[i].ts)
			return false
		}
	}
	return ok
}

// TestSeparateWindowsFollowOnTheirOwn: with trigger.repeat separate, two
// presses a second apart open two overlapping windows, each with its own
// follower writing the same packets into its own files: the first is saved
// at its own end, before the second's window is over, and each file equals
// what tcpdump saw in its window.
func TestSeparateWindowsFollowOnTheirOwn(t *testing.T) {
	netnstest.Require(t, "ip", "tcpdump", "tcpreplay", "capinfos", "tshark")
	pcap := writeJumboPcap(t, 3000)
	pair := jumboPair(t)
	c := permConfig(t, pair.Host)
	c.Trigger.Repeat = window.RepeatSeparate
	c.Trigger.After = config.Duration(3 * time.Second)
	c.Exports = []config.Export{{Name: "all"}}
	oracle := netnstest.StartTcpdumpBuffer(t, pair.Host, 262144, "", oracleBufKiB)
	r := startService(t, c, nil)
	testtool.WaitFor(t, "recording", 20*time.Second, func() bool { return r.svc.Storage().State().State == storage.DiskRecording })
	const pps = 300 // 3000 frames: 10 s
	rp := startReplay(t, pair, pcap, pps, 1)
	time.Sleep(2 * time.Second)
	p1, err := r.svc.Trigger("local", "")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	p2, err := r.svc.Trigger("local", "")
	if err != nil {
		t.Fatal(err)
	}
	if p1.Decision != "opened" || p2.Decision != "opened" || p1.Window == p2.Window {
		t.Fatalf("presses: %+v, %+v; want two windows opened", p1, p2)
	}
	first := r.waitExport(t, 20*time.Second)
	second := r.waitExport(t, 20*time.Second)
	end2 := p2.Time.Add(c.Trigger.After.D())
	if first.err != nil || second.err != nil {
		t.Fatalf("exports: %v, %v\nlog:\n%s", first.err, second.err, r.log)
	}
	if !first.man.PressTime.Equal(p1.Time) || !first.when.Before(end2) {
		t.Errorf("first save: press %v at %v; want press %v saved before the second window ends at %v", first.man.PressTime, first.when, p1.Time, end2)
	}
	rp.wait(t)
	seen := oracle.Settle(t, func(ps []netnstest.Packet) bool {
		return len(ps) > 0 && ps[len(ps)-1].Time >= end2.UnixNano()
	})
	for _, res := range []exportResult{first, second} {
		m := res.man
		got := readPCAP(t, filepath.Join(c.Storage.PermDir, c.Storage.QueueDir, m.Files[0].File))
		samePackets(t, got, m.Files[0].Packets, seen, m.From.UnixNano(), m.To.UnixNano(), 3*pps)
	}
}

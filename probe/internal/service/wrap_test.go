package service

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/config"
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
func TestFastLineKeepsWindow(t *testing.T) {
	netnstest.Require(t, "ip", "tcpdump", "tcpreplay", "capinfos", "tshark")
	pcap := writeJumboPcap(t, 3000)
	for _, tc := range []struct {
		name   string
		before time.Duration
		whole  bool
	}{{"before 1s", time.Second, true}, {"before 4s, longer than the ring", 4 * time.Second, false}} {
		t.Run(tc.name, func(t *testing.T) {
			pair := jumboPair(t)
			c := permConfig(t, pair.Host)
			c.Trigger.Before = config.Duration(tc.before)
			c.Trigger.After = config.Duration(time.Second)
			c.Exports = []config.Export{{Name: "all"}}
			oracle := netnstest.StartTcpdumpBuffer(t, pair.Host, 262144, "", oracleBufKiB)
			r := startService(t, c, nil)
			testtool.WaitFor(t, "recording", 20*time.Second, func() bool { return r.svc.Storage().State().State == storage.DiskRecording })

			// 6 loops of 1.5 s: the ring wraps after about 2 s; the
			// press comes at 3.5 s, its window ends at 4.5 s, the
			// traffic at 9 s.
			replay := startReplay(t, pair, pcap, wrapRate, 6)
			start := time.Now()
			testtool.WaitFor(t, "the ring to wrap", 20*time.Second, func() bool {
				ring, _, err := r.svc.Storage().Ring()
				if err != nil {
					return false
				}
				in, err := ring.Info()
				return err == nil && in.Oldest > start.UnixNano()+int64(500*time.Millisecond)
			})
			time.Sleep(time.Until(start.Add(3500 * time.Millisecond)))
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
			from, to := p.Time.Add(-tc.before), p.Time.Add(time.Second)
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
			first := from.UnixNano()
			if tc.whole {
				if m.Truncated {
					t.Errorf("manifest: truncated (%s, %s missing, ring_oldest %v), want the whole window", m.Reason, m.Missing, m.RingOldest)
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
			samePackets(t, got, m.Files[0].Packets, seen, first, to.UnixNano(), wrapRate)
			if m.Drops != 0 {
				t.Errorf("the capture dropped %d packets in the window", m.Drops)
			}
		})
	}
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
// at least least of them.
func samePackets(t *testing.T, got []pkt, n uint64, seen []netnstest.Packet, from, to int64, least int) {
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
	if len(got) != len(want) || n != uint64(len(got)) {
		t.Errorf("file has %d packets (%s), manifest %d; tcpdump saw %d (%s)", len(got), span(got), n, len(want), span(want))
	}
	for i := 0; i < min(len(got), len(want)); i++ {
		if got[i].ts != want[i].ts || got[i].origLen != want[i].origLen || !bytes.Equal(got[i].data, want[i].data) {
			t.Errorf("packet %d differs: file ts %d, tcpdump ts %d", i, got[i].ts, want[i].ts)
			break
		}
	}
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

package service

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/internal/status"
	"github.com/presscap/presscap/probe/internal/storage"
	"github.com/presscap/presscap/probe/internal/window"
)

// TestLatePressExtendsWithoutLoss: a press whose key time is just before
// the window's end but reaches the service after the end has passed (the
// window not yet saved) extends the window; the follower must not have
// passed the packets after the old end meanwhile, or the file would lack
// them without the manifest saying so. The file equals what tcpdump saw in
// the extended window.
func TestLatePressExtendsWithoutLoss(t *testing.T) {
	netnstest.Require(t, "ip", "tcpdump", "tcpreplay")
	const rate = 200 // jumbo frames a second: 3.2 MB/s, the ring holds 20 s
	pcap := writeJumboPcap(t, 3000)
	pair := jumboPair(t)
	c := permConfig(t, pair.Host)
	c.Exports = []config.Export{{Name: "all"}}
	oracle := netnstest.StartTcpdumpBuffer(t, pair.Host, 262144, "", oracleBufKiB)
	// The save waits 4 s after the window's end: time for the follower to
	// step past the end several times before the late press arrives.
	r := startServiceWith(t, c, nil, func(o *Options) { o.ExportDelay = 4 * time.Second })
	testtool.WaitFor(t, "recording", 20*time.Second, func() bool { return r.svc.Storage().State().State == storage.DiskRecording })
	replay := startReplay(t, pair, pcap, rate, 1)
	testtool.WaitFor(t, "1.5 s of traffic in the ring", 20*time.Second, func() bool {
		ring, _, err := r.svc.Storage().Ring()
		if err != nil {
			return false
		}
		in, err := ring.Info()
		return err == nil && in.Newest-in.Oldest > int64(1500*time.Millisecond)
	})
	p, err := r.svc.Trigger("local", "")
	if err != nil {
		t.Fatal(err)
	}
	end := p.Time.Add(time.Second)
	// Well past the end (the ring writer has flushed the blocks after it),
	// before the save.
	time.Sleep(time.Until(end.Add(2500 * time.Millisecond)))
	select {
	case e := <-r.exported:
		t.Fatalf("saved before the late press (%v): the export delay did not hold", e.err)
	default:
	}
	late := pressReq{p: window.PressInfo{Time: end.Add(-time.Millisecond), Source: "late", Received: time.Now()}, reply: make(chan status.Press, 1)}
	r.svc.presses <- late
	sp := <-late.reply
	if sp.Decision != "extended" || sp.Window != p.Window {
		t.Fatalf("late press: %s window %d, want extended window %d", sp.Decision, sp.Window, p.Window)
	}
	from, to := p.Time.Add(-time.Second), end.Add(-time.Millisecond).Add(time.Second)
	res := r.waitExport(t, 30*time.Second)
	if res.err != nil {
		t.Fatalf("export: %v\nlog:\n%s", res.err, r.log)
	}
	replay.wait(t)
	seen := oracle.Settle(t, func(ps []netnstest.Packet) bool {
		return len(ps) > 0 && ps[len(ps)-1].Time >= to.UnixNano()
	})
	m := res.man
	if m.Truncated {
		t.Errorf("manifest: truncated (%s, %s missing), want the whole window", m.Reason, m.Missing)
	}
	got := readPCAP(t, filepath.Join(c.Storage.PermDir, c.Storage.QueueDir, m.Files[0].File))
	samePackets(t, got, m.Files[0].Packets, seen, from.UnixNano(), to.UnixNano(), rate*5/2)
}

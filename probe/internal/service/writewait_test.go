package service

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/internal/capture"
	"github.com/presscap/presscap/probe/internal/pcapfile/pcapfiletest"
	"github.com/presscap/presscap/probe/internal/window"
	"github.com/presscap/presscap/ringfs"
)

// stallSink passes records to the ring, except while stalled: then Append
// blocks, like a USB disk that stops answering for a moment.
type stallSink struct {
	capture.Sink
	mu   sync.Mutex
	gate chan struct{}
}

func (s *stallSink) Append(r ringfs.Record) error {
	s.mu.Lock()
	g := s.gate
	s.mu.Unlock()
	if g != nil {
		<-g
	}
	return s.Sink.Append(r)
}

func (s *stallSink) stall() {
	s.mu.Lock()
	s.gate = make(chan struct{})
	s.mu.Unlock()
}

func (s *stallSink) release() {
	s.mu.Lock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
	s.mu.Unlock()
}

type stalledRun struct {
	res      exportResult
	path     string
	got      []pkt
	want     []netnstest.Packet // tcpdump's packets in the window
	released time.Time
	log      string
}

// stalledEnd presses, sends 40 frames that reach the ring, stalls the
// ring's writer, and sends 10 more frames well before the window's end.
// With a wait long enough (waitOut false) it releases the writer 2 s after
// the service is due to cut the window; when the wait is expected to run
// out, only once the export is done, so that a slow save cannot let the
// last 10 packets in.
func stalledEnd(t *testing.T, writeWait time.Duration, waitOut bool) stalledRun {
	netnstest.Require(t, "ip", "tcpdump")
	pair := netnstest.NewPair(t)
	c := permConfig(t, pair.Host)
	// Room for a loaded machine to get the first 40 frames into the ring
	// and send the last 10 before the window's end.
	c.Trigger.After = config.Duration(4 * time.Second)
	c.Exports = []config.Export{{Name: "all"}}
	oracle := netnstest.StartTcpdump(t, pair.Host, 262144, "")
	var ss *stallSink
	const exportDelay = 500 * time.Millisecond
	r := startServiceWith(t, c, nil, func(o *Options) {
		o.ExportDelay = exportDelay
		o.WriteWait = writeWait
		o.WrapSink = func(s capture.Sink) capture.Sink { ss = &stallSink{Sink: s}; return ss }
	})
	t.Cleanup(func() { ss.release() }) // before the service stops
	sender, frames, base := warmUp(t, r, pair)
	p, err := r.svc.Trigger("local", "")
	if err != nil {
		t.Fatal(err)
	}
	to := p.Time.Add(c.Trigger.After.D())
	for _, f := range frames[:40] {
		if err := sender.Send(f); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	testtool.WaitFor(t, "the first 40 frames in the ring", 20*time.Second, func() bool {
		return r.svc.Snapshot().Links[0].Written >= base+40
	})
	ss.stall()
	if err := sender.Send(frames[40:50]...); err != nil {
		t.Fatal(err)
	}
	if late := time.Since(to.Add(-300 * time.Millisecond)); late > 0 {
		t.Fatalf("the machine is too slow for this test: the last frames were sent %v after window end - 300ms", late)
	}
	released := make(chan time.Time, 1)
	if !waitOut {
		go func() {
			time.Sleep(time.Until(to.Add(exportDelay + 2*time.Second)))
			released <- time.Now()
			ss.release()
		}()
	}
	res := r.waitExport(t, 40*time.Second)
	if waitOut {
		// Still stalled: a window's wait reports the lag, except at
		// shutdown, where the wait ends at once and says nothing of the disk.
		w := &window.Window{ID: 99, From: p.Time, To: to}
		if lag := r.svc.waitWritten(context.Background(), w); lag == nil {
			t.Errorf("waitWritten with the writer stalled reported no lag")
		}
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		if lag := r.svc.waitWritten(cancelled, w); lag != nil {
			t.Errorf("waitWritten at shutdown reported a lag: %+v", lag)
		}
		released <- time.Now()
		ss.release()
	}
	if res.err != nil {
		t.Fatalf("export: %v\nlog:\n%s", res.err, r.log)
	}
	run := stalledRun{res: res, released: <-released, log: r.log.String()}
	run.path = filepath.Join(c.Storage.PermDir, c.Storage.QueueDir, res.man.Files[0].File)
	run.got = readPCAP(t, run.path)
	run.want = inWindow(oracle.Settle(t, windowHolds(res.man, 50)), res.man)
	if len(run.want) != 50 {
		t.Fatalf("tcpdump saw %d packets in the window, sent 50", len(run.want))
	}
	return run
}

func frameID(b []byte) int { return int(b[10])<<8 | int(b[11]) }

// TestExportWaitsForStalledWriter: the window's last packets sit in the
// capture's buffer behind a stalled ring writer when the window is due;
// the export waits for them, and the file holds all that tcpdump saw.
// The subtest without the wait shows what today's export would have cut:
// the same window without its last 10 packets, and the manifest says so.
func TestExportWaitsForStalledWriter(t *testing.T) {
	t.Run("wait", func(t *testing.T) {
		run := stalledEnd(t, 20*time.Second, false)
		if run.res.when.Before(run.released) {
			t.Errorf("exported at %v, before the writer was released at %v", run.res.when, run.released)
		}
		if lag := run.res.man.CaptureNotCaughtUp; lag != nil {
			t.Errorf("manifest says the capture was behind: %+v", lag)
		}
		if len(run.got) != len(run.want) {
			t.Fatalf("file has %d packets, tcpdump saw %d in the window", len(run.got), len(run.want))
		}
		for i, g := range run.got {
			w := run.want[i]
			if g.ts != w.Time || int(g.origLen) != w.OrigLen || !bytes.Equal(g.data, w.Data) {
				t.Fatalf("packet %d: file ts %d len %d, tcpdump ts %d len %d", i, g.ts, len(g.data), w.Time, len(w.Data))
			}
		}
		if n := pcapfiletest.Validate(t, run.path); n != 50 {
			t.Errorf("tshark reads %d packets, want 50", n)
		}
		if !strings.Contains(run.log, "waited") {
			t.Errorf("the log does not say the export waited:\n%s", run.log)
		}
	})
	// Without the wait (what the export did before it waited), and with a
	// wait that runs out before the disk comes back: the same 10 packets
	// are missing, and the manifest and the log say the end may be short.
	for _, tc := range []struct {
		name string
		wait time.Duration
	}{{"no wait", -1}, {"limit hit", 300 * time.Millisecond}} {
		t.Run(tc.name, func(t *testing.T) { stalledShort(t, tc.wait) })
	}
}

// stalledShort: the export cut the window while the writer was stalled.
func stalledShort(t *testing.T, wait time.Duration) {
	run := stalledEnd(t, wait, true)
	if !run.res.when.Before(run.released) {
		t.Errorf("exported at %v, not before the writer was released at %v", run.res.when, run.released)
	}
	var ids []int
	for _, g := range run.got {
		ids = append(ids, frameID(g.data))
	}
	if len(run.got) != 40 || len(ids) == 0 || ids[len(ids)-1] != 39 {
		t.Fatalf("without the wait the file has %d packets (ids %v), want the 40 written before the stall", len(run.got), ids)
	}
	for i, g := range run.got {
		if !bytes.Equal(g.data, run.want[i].Data) || g.ts != run.want[i].Time {
			t.Fatalf("packet %d differs from tcpdump's", i)
		}
	}
	lag := run.res.man.CaptureNotCaughtUp
	if lag == nil {
		t.Fatalf("manifest does not say the capture was behind: %+v", run.res.man)
	}
	behind, err := time.ParseDuration(lag.Behind)
	if err != nil || behind <= 0 || !lag.WrittenUntil.Before(run.res.man.To) {
		t.Errorf("manifest lag %+v: want a positive behind and written_until before the window's end %v", lag, run.res.man.To)
	}
	// The engineer reads it in the manifest file.
	b, err := os.ReadFile(strings.TrimSuffix(run.path, "_all.pcap") + "_manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil || raw["capture_not_caught_up"] == nil {
		t.Errorf("manifest file lacks capture_not_caught_up (%v):\n%s", err, b)
	}
	if waited, err := time.ParseDuration(lag.Waited); err != nil || waited < max(wait, 0) {
		t.Errorf("manifest says the export waited %q, want at least %v", lag.Waited, max(wait, 0))
	}
	if strings.Count(run.log, "had not written the window's end") != 1 || !strings.Contains(run.log, "may be short") {
		t.Errorf("the log does not say once that the capture was behind:\n%s", run.log)
	}
}

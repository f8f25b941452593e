package export

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/presscap/presscap/probe/internal/filenames"
	"github.com/presscap/presscap/probe/internal/pcapfile/pcapfiletest"
	"github.com/presscap/presscap/probe/internal/report"
	"github.com/presscap/presscap/probe/internal/report/reportcheck"
	"github.com/presscap/presscap/probe/internal/report/reporttest"
	"github.com/presscap/presscap/probe/internal/window"
	"github.com/presscap/presscap/ringfs"
)

// exportFrame is a 100-byte Ethernet/IPv4/UDP frame, with an 802.1Q tag
// (VLAN vid) when vid > 0; its last byte is id.
func exportFrame(vid uint16, id byte) []byte {
	f := []byte{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2}
	if vid > 0 {
		f = binary.BigEndian.AppendUint16(f, 0x8100)
		f = binary.BigEndian.AppendUint16(f, vid)
	}
	f = binary.BigEndian.AppendUint16(f, 0x0800)
	ip := make([]byte, 20+8)
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	binary.BigEndian.PutUint16(ip[20:], 5000)
	binary.BigEndian.PutUint16(ip[22:], 6000)
	f = append(f, ip...)
	f = append(f, make([]byte, 100-len(f))...)
	f[99] = id
	return f
}

// TestExportFilterLiveMeaningOnSlicedPackets: a ring rule keeps only 100
// bytes of each packet. An export filter must judge len/less/greater on the
// packet's length as `tcpdump -i` saw it on the link (the original length,
// less the outer VLAN tag the kernel had taken out), and `ip` must match a
// tagged IPv4 frame as it does live. Judging the stored 100 bytes, or the
// file meaning of the expression, selects other packets.
func TestExportFilterLiveMeaningOnSlicedPackets(t *testing.T) {
	ring, err := ringfs.Create(filepath.Join(t.TempDir(), "ring"), ringfs.Options{Size: ringfs.MinSize, Buffered: true, FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ring.Close() })
	link, err := ring.AddLink(ringfs.Link{Name: "eth0", LinkType: 1, SnapLen: 100})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	// Wire lengths as tcpdump -i sees them: A 1000, B 100, C 996, D 496, E 499.
	recs := []struct {
		id   byte
		vid  uint16
		orig uint32
	}{{'A', 0, 1000}, {'B', 0, 100}, {'C', 10, 1000}, {'D', 10, 500}, {'E', 0, 499}}
	origOf := map[byte]uint32{}
	for i, r := range recs {
		origOf[r.id] = r.orig
		rec := ringfs.Record{Time: base.Add(time.Duration(i) * time.Millisecond).UnixNano(), Link: link,
			OrigLen: r.orig, Data: exportFrame(r.vid, r.id)}
		if err := ring.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := ring.Flush(); err != nil {
		t.Fatal(err)
	}

	cases := []struct{ name, filter, want string }{
		{"greater", "greater 498", "ACE"},           // stored length: none; file meaning: ACDE
		{"ipless", "ip and less 600", "BDE"},        // stored length: all; file meaning: BE
		{"vlanbig", "vlan 10 and greater 900", "C"}, // stored length: none
		{"len", "len = 496", "D"},
		{"all", "", "ABCDE"},
	}
	var specs []Spec
	for _, c := range cases {
		specs = append(specs, Spec{Name: c.name, Filter: c.filter})
	}
	w := &window.Window{ID: 1, Presses: []window.PressInfo{{Time: base, Synced: true}}, From: base.Add(-time.Second), To: base.Add(time.Second)}
	dir := t.TempDir()
	man, err := Cut(context.Background(), ring, w, specs, "probe", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Files) != len(cases) {
		t.Fatalf("manifest lists %d files, want %d", len(man.Files), len(cases))
	}
	for i, c := range cases {
		path := filepath.Join(dir, man.Files[i].File)
		var got []byte
		for _, p := range readPCAP(t, path) {
			id := p.data[len(p.data)-1]
			got = append(got, id)
			if p.origLen != origOf[id] || len(p.data) != 100 {
				t.Errorf("%s: packet %c stored as %d of %d bytes, want 100 of %d", c.filter, id, len(p.data), p.origLen, origOf[id])
			}
		}
		if string(got) != c.want {
			t.Errorf("export %q: packets %q, want %q", c.filter, got, c.want)
		}
		if n := pcapfiletest.Validate(t, path); n != len(c.want) {
			t.Errorf("%s: tshark reads %d packets, want %d", path, n, len(c.want))
		}
		if man.Files[i].Packets != uint64(len(c.want)) {
			t.Errorf("manifest: %s has %d packets, want %d", c.name, man.Files[i].Packets, len(c.want))
		}
	}
}

// smallRing is a 64 MiB ring with 64 KiB blocks and its one link.
func smallRing(t *testing.T) (*ringfs.Ring, uint16) {
	ring, err := ringfs.Create(filepath.Join(t.TempDir(), "ring"), ringfs.Options{Size: ringfs.MinSize, Buffered: true, FlushInterval: -1, BlockSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ring.Close() })
	link, err := ring.AddLink(ringfs.Link{Name: "eth0", LinkType: 1})
	if err != nil {
		t.Fatal(err)
	}
	return ring, link
}

// TestExportSaysWhatTheRingLacks: a window whose start the ring had
// already overwritten when it was cut is saved with what is left, and the
// manifest says it is truncated, why, and where the ring (and so the file)
// begins. A window older than a ring that never wrapped, or from before
// the ring began recording in this run, is truncated too; a ring that was
// recording all along and merely heard nothing lacks nothing.
func TestExportSaysWhatTheRingLacks(t *testing.T) {
	ring, link := smallRing(t)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	frame := exportFrame(0, 'x')
	frame = append(frame, make([]byte, 900)...)
	// 1 ms apart, 200 s in all: about three times the ring.
	const n = 200000
	for i := range n {
		rec := ringfs.Record{Time: base.Add(time.Duration(i) * time.Millisecond).UnixNano(), Link: link, OrigLen: uint32(len(frame)), Data: frame}
		if err := ring.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := ring.Flush(); err != nil {
		t.Fatal(err)
	}
	info, err := ring.Info()
	if err != nil {
		t.Fatal(err)
	}
	oldest := time.Unix(0, info.Oldest).UTC()
	press := oldest.Add(10 * time.Second)
	specs := []Spec{{Name: "all"}}
	export := func(w *window.Window) (Manifest, []pkt) {
		t.Helper()
		dir := t.TempDir()
		man, err := Cut(context.Background(), ring, w, specs, "probe", dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		return man, readPCAP(t, filepath.Join(dir, man.Files[0].File))
	}

	// 30 s before the press: 20 s of them are gone.
	w := &window.Window{ID: 1, Presses: []window.PressInfo{{Time: press, Synced: true}}, From: press.Add(-30 * time.Second), To: press.Add(time.Second)}
	man, got := export(w)
	if !man.Truncated || man.Reason != ringfs.ReasonNotReached || !man.RingOldest.Equal(oldest) || man.Missing != "20s" {
		t.Errorf("manifest truncated %v reason %q ring_oldest %v missing %q, want true %q %v 20s",
			man.Truncated, man.Reason, man.RingOldest, man.Missing, ringfs.ReasonNotReached, oldest)
	}
	if len(got) != 11000 || got[0].ts != oldest.UnixNano() {
		t.Errorf("file holds %d packets from %v, want 11000 from the ring's oldest %v", len(got), time.Unix(0, got[0].ts).UTC(), oldest)
	}
	// The report says so too, at the top.
	if s := man.Summary; s == nil || s.Missing != "20s" || s.MissingReason != ringfs.ReasonNotReached || len(s.Findings) == 0 ||
		!strings.Contains(s.Findings[0].Text, "lack 20s of the window") {
		t.Errorf("report of a truncated window: %+v", s)
	}

	// A window the ring holds whole.
	w.From = press.Add(-5 * time.Second)
	if man, got := export(w); man.Truncated || man.Reason != "" || len(got) != 6000 {
		t.Errorf("whole window: truncated %v (%s), %d packets, want 6000", man.Truncated, man.Reason, len(got))
	}
	// The ring began recording in this run after the window's start: the
	// packets it holds from before (an earlier run) leave a gap.
	w.Recording = press.Add(-2 * time.Second)
	man, _ = export(w)
	if !man.Truncated || man.Reason != ringfs.ReasonYounger || !man.RingOldest.Equal(w.Recording) || man.Missing != "3s" {
		t.Errorf("ring opened 2 s before the press: truncated %v reason %q ring_oldest %v missing %q, want %q from %v, 3s",
			man.Truncated, man.Reason, man.RingOldest, man.Missing, ringfs.ReasonYounger, w.Recording)
	}

	// A ring that never wrapped, whose first packet came after the
	// window's start: lacking if it began recording after the start,
	// complete if it was recording (and heard nothing) before.
	ring, link = smallRing(t)
	rec := ringfs.Record{Time: press.UnixNano(), Link: link, OrigLen: uint32(len(frame)), Data: frame}
	if err := ring.Append(rec); err != nil {
		t.Fatal(err)
	}
	w.Recording = time.Time{}
	if man, _ := export(w); !man.Truncated || man.Reason != ringfs.ReasonYounger || !man.RingOldest.Equal(press) {
		t.Errorf("young ring: truncated %v reason %q ring_oldest %v, want %q from %v", man.Truncated, man.Reason, man.RingOldest, ringfs.ReasonYounger, press)
	}
	w.Recording = w.From.Add(-time.Second)
	if man, got := export(w); man.Truncated || len(got) != 1 {
		t.Errorf("ring recording since before the window: truncated %v (%s), %d packets, want 1", man.Truncated, man.Reason, len(got))
	}
}

// TestCutResumesFromProgress: a window's files written in steps, made
// durable (sync), then continued by a new run from the recorded progress
// after bytes written past it were left over (a power cut), come out the
// same as one cut at the end: nothing twice, nothing lost, a valid file.
func TestCutResumesFromProgress(t *testing.T) {
	ring, link := smallRing(t)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	add := func(from, to int) {
		for i := from; i < to; i++ {
			f := exportFrame(uint16(i%2*10), byte(i))
			rec := ringfs.Record{Time: base.Add(time.Duration(i) * time.Millisecond).UnixNano(), Link: link, OrigLen: uint32(len(f)), Data: f}
			if err := ring.Append(rec); err != nil {
				t.Fatal(err)
			}
		}
	}
	w := &window.Window{ID: 7, Presses: []window.PressInfo{{Time: base.Add(3 * time.Second), Synced: false}},
		From: base.Add(time.Second), To: base.Add(5 * time.Second)}
	for _, format := range []string{"pcap", "pcapng"} {
		t.Run(format, func(t *testing.T) {
			specs := []Spec{{Name: "all", Format: format}, {Name: "vlan", Filter: "vlan 10", Format: format}}
			if format == "pcap" {
				add(0, 2000)
			}
			dir := t.TempDir()
			c, err := Open(ring, w, specs, "probe", dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if format == "pcap" {
				if err := c.Step(context.Background(), ring, w.To, true); err != nil {
					t.Fatal(err)
				}
			}
			prog, err := c.Sync()
			if err != nil {
				t.Fatal(err)
			}
			if format == "pcap" {
				add(2000, 4000)
			}
			// Written after the sync, then the power went: the resume
			// must not keep it.
			if err := c.Step(context.Background(), ring, w.To, true); err != nil {
				t.Fatal(err)
			}
			for _, f := range c.files {
				f.W.Flush()
				f.tmp.Write([]byte("torn"))
			}
			c.Close()
			if format == "pcap" {
				add(4000, 6000)
			}
			man := resumeAndFinish(t, ring, w, specs, dir, prog)
			once := t.TempDir()
			want, err := Cut(context.Background(), ring, w, specs, "probe", once, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, mf := range man.Files {
				a, _ := os.ReadFile(filepath.Join(dir, mf.File))
				b, _ := os.ReadFile(filepath.Join(once, want.Files[i].File))
				if !bytes.Equal(a, b) || mf.Packets != want.Files[i].Packets || mf.Packets == 0 {
					t.Errorf("%s: resumed file (%d bytes, %d packets) differs from one cut at once (%d bytes, %d packets)",
						mf.File, len(a), mf.Packets, len(b), want.Files[i].Packets)
				}
				if n := pcapfiletest.Validate(t, filepath.Join(dir, mf.File)); uint64(n) != mf.Packets {
					t.Errorf("%s: tshark reads %d packets, manifest says %d", mf.File, n, mf.Packets)
				}
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".partial-*")); len(left) != 0 {
				t.Errorf("partial files left: %v", left)
			}
		})
	}
}

// TestExportWritesTheReport: the window's capture report is computed in
// the export's pass over the packets the exports select (a VoIP profile's
// "udp" export: the calls, RTP and DNS, none of the TCP), put into the
// manifest's summary and beside the window's files as <base>_report.html, a
// name the upload sends.
func TestExportWritesTheReport(t *testing.T) {
	ring, err := ringfs.Create(filepath.Join(t.TempDir(), "ring"), ringfs.Options{Size: ringfs.MinSize, Buffered: true, FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ring.Close() })
	link, err := ring.AddLink(ringfs.Link{Name: "eth0", LinkType: 1})
	if err != nil {
		t.Fatal(err)
	}
	g, tr := reporttest.Mixed(1)
	g.Sort()
	for _, p := range g.Pkts {
		if err := ring.Append(ringfs.Record{Time: p.TS, Link: link, OrigLen: uint32(len(p.Data)), Data: p.Data}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ring.Flush(); err != nil {
		t.Fatal(err)
	}
	press := time.Unix(0, g.T0+int64(5*time.Second))
	win := &window.Window{ID: 1, Presses: []window.PressInfo{{Time: press, Synced: true}}, From: time.Unix(0, g.T0), To: time.Unix(0, g.T0+int64(20*time.Second))}
	dir := t.TempDir()
	man, err := Cut(context.Background(), ring, win, []Spec{{Name: "voip", Filter: "udp"}}, "probe1", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := man.Summary
	if s == nil {
		t.Fatal("no summary in the manifest")
	}
	if len(s.RTPStreams) != len(tr.RTP) || s.SIP.Calls != tr.Calls || s.DNS.Queries != tr.DNSQueries {
		t.Errorf("summary: %d RTP streams, %d calls, %d DNS queries; want %d, %d, %d", len(s.RTPStreams), s.SIP.Calls, s.DNS.Queries,
			len(tr.RTP), tr.Calls, tr.DNSQueries)
	}
	if s.TCP.Packets != 0 || s.Packets != man.Files[0].Packets {
		t.Errorf("the report describes %d packets (%d TCP), the export holds %d: it must cover only what the exports select",
			s.Packets, s.TCP.Packets, man.Files[0].Packets)
	}
	if s.Press == nil || !s.Press.Equal(press) || !s.Start.Equal(win.From) {
		t.Errorf("press %v start %v, want %v %v", s.Press, s.Start, press, win.From)
	}
	base := FileBase("probe1", win)
	page, err := os.ReadFile(filepath.Join(dir, filenames.Report(base)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(page, []byte(`id="findings"`)) || !bytes.Contains(page, []byte("failed with 486")) || !filenames.Produced(filenames.Report(base)) {
		t.Errorf("report page %s (%d bytes) lacks its findings or has a name the upload refuses", filenames.Report(base), len(page))
	}
	mb, err := os.ReadFile(filepath.Join(dir, filenames.Manifest(base)))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk struct {
		Summary struct {
			RTPStreams []struct {
				SSRC uint32 `json:"ssrc"`
			} `json:"rtp_streams"`
		} `json:"summary"`
	}
	if err := json.Unmarshal(mb, &onDisk); err != nil || len(onDisk.Summary.RTPStreams) != len(tr.RTP) {
		t.Errorf("manifest on disk: %v, %d RTP streams in its summary", err, len(onDisk.Summary.RTPStreams))
	}
}

// stopAfter is a context cancelled after its Err was asked n times: a stop
// that arrives part way through a step, at a block boundary, every run.
type stopAfter struct {
	context.Context
	n int
}

func (c *stopAfter) Err() error {
	if c.n--; c.n < 0 {
		return context.Canceled
	}
	return nil
}

// TestCutStoppedMidStep: a stop in the middle of a step (the service
// shutting down while a window is read) leaves files and progress that a
// new run continues into the same files one cut at once makes: the blocks
// the stopped step did not write are read after the restart, not skipped.
func TestCutStoppedMidStep(t *testing.T) {
	ring, link := smallRing(t)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 6000 {
		f := exportFrame(uint16(i%2*10), byte(i))
		rec := ringfs.Record{Time: base.Add(time.Duration(i) * time.Millisecond).UnixNano(), Link: link, OrigLen: uint32(len(f)), Data: f}
		if err := ring.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	w := &window.Window{ID: 8, Presses: []window.PressInfo{{Time: base.Add(3 * time.Second), Synced: true}},
		From: base.Add(time.Second), To: base.Add(5 * time.Second)}
	specs := []Spec{{Name: "all"}}
	dir := t.TempDir()
	c, err := Open(ring, w, specs, "probe", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Step(&stopAfter{Context: context.Background(), n: 3}, ring, w.To, true); err == nil {
		t.Fatal("the stopped step did not stop: the window fits in too few blocks for this test")
	}
	stopped := c.files[0].Packets
	prog, err := c.Sync()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	man := resumeAndFinish(t, ring, w, specs, dir, prog)
	want, err := Cut(context.Background(), ring, w, specs, "probe", t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if stopped == 0 || stopped >= want.Files[0].Packets {
		t.Fatalf("the stop came after %d of %d packets, want part way", stopped, want.Files[0].Packets)
	}
	if man.Files[0].Packets != want.Files[0].Packets || man.Truncated {
		t.Errorf("stopped after %d packets and continued: %d packets (truncated %v), one cut at once has %d",
			stopped, man.Files[0].Packets, man.Truncated, want.Files[0].Packets)
	}
}

// TestExportSaysMaxAgeHidesTheStart: a window reaching back further than
// ring.max_age is saved from the cut-off on, and the manifest names the
// reason (max_age), where the file begins and how much is missing.
func TestExportSaysMaxAgeHidesTheStart(t *testing.T) {
	ring, err := ringfs.Create(filepath.Join(t.TempDir(), "ring"), ringfs.Options{Size: ringfs.MinSize, Buffered: true,
		FlushInterval: -1, BlockSize: 64 << 10, MaxAge: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ring.Close() })
	link, err := ring.AddLink(ringfs.Link{Name: "eth0", LinkType: 1})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 100 { // one packet every 100 ms: 10 s
		f := exportFrame(0, byte(i))
		rec := ringfs.Record{Time: base.Add(time.Duration(i) * 100 * time.Millisecond).UnixNano(), Link: link, OrigLen: uint32(len(f)), Data: f}
		if err := ring.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := ring.Flush(); err != nil {
		t.Fatal(err)
	}
	press := base.Add(9 * time.Second)
	w := &window.Window{ID: 1, Presses: []window.PressInfo{{Time: press, Synced: true}}, From: base, To: press.Add(time.Second)}
	dir := t.TempDir()
	man, err := Cut(context.Background(), ring, w, []Spec{{Name: "all"}}, "probe", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := readPCAP(t, filepath.Join(dir, man.Files[0].File))
	cut := base.Add(9900 * time.Millisecond).Add(-5 * time.Second) // newest packet - max_age
	if !man.Truncated || man.Reason != ringfs.ReasonMaxAge || !man.RingOldest.Equal(cut) || man.Missing != "4.9s" ||
		len(got) == 0 || got[0].ts != cut.UnixNano() {
		t.Errorf("manifest truncated %v reason %q ring_oldest %v missing %q, %d packets; want true %q %v 4.9s, the file beginning there",
			man.Truncated, man.Reason, man.RingOldest, man.Missing, len(got), ringfs.ReasonMaxAge, cut)
	}
}

func TestRetryable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("export all: %w", &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}), true},
		{fmt.Errorf("read window: %w", syscall.EIO), true},
		{fmt.Errorf("export all: %w", &os.PathError{Op: "open", Path: "x", Err: syscall.EROFS}), true},
		{fmt.Errorf("export all: %w", &os.PathError{Op: "write", Path: "x", Err: syscall.ENODEV}), true},
		{fmt.Errorf("read window: %w", syscall.ENXIO), true},
		{fmt.Errorf("export all: %w", os.ErrClosed), true},
		{errors.New("something nobody foresaw"), true},
		{fmt.Errorf("export v: %w", &SetupError{Field: "link", Err: errors.New("link \"eth9\" is not in the ring")}), false},
	} {
		if got := Retryable(c.err); got != c.want {
			t.Errorf("Retryable(%v) = %v", c.err, got)
		}
	}
	// What Export itself returns for a filter that does not compile and a
	// link the ring does not hold.
	ring, err := ringfs.Create(filepath.Join(t.TempDir(), "ring"), ringfs.Options{Size: ringfs.MinSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ring.Close() })
	if _, err := ring.AddLink(ringfs.Link{Name: "eth0", LinkType: 1, SnapLen: 100}); err != nil {
		t.Fatal(err)
	}
	w := &window.Window{ID: 1, From: time.Unix(1, 0), To: time.Unix(2, 0), Presses: []window.PressInfo{{Time: time.Unix(1, 0)}}}
	for _, spec := range []Spec{{Name: "f", Filter: "tcp port"}, {Name: "l", Link: "nosuch"}} {
		_, err := Cut(t.Context(), ring, w, []Spec{spec}, "h", t.TempDir(), nil)
		if err == nil || Retryable(err) {
			t.Errorf("export %+v: %v, retryable %v: want a final failure", spec, err, err != nil && Retryable(err))
		}
	}
}

type pkt struct {
	ts      int64
	origLen uint32
	data    []byte
}

func readPCAP(t *testing.T, path string) []pkt {
	t.Helper()
	var out []pkt
	for _, p := range pcapfiletest.Read(t, path) {
		out = append(out, pkt{p.Time, p.OrigLen, p.Data})
	}
	return out
}

// TestManifestLinkGaps: the manifest lists the gaps of the ring's links
// that overlap the window (link_gaps, by link name; no "to" for a link not
// back), and no other.
func TestManifestLinkGaps(t *testing.T) {
	ring, eth0 := smallRing(t)
	eth1, err := ring.AddLink(ringfs.Link{Name: "eth1", LinkType: 1})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(d time.Duration) int64 { return base.Add(d).UnixNano() }
	frame := exportFrame(0, 'x')
	gaps := map[int]ringfs.Gap{
		5:   {Link: eth1, From: at(-100 * time.Second), To: at(-90 * time.Second)},
		20:  {Link: eth1, From: at(time.Second)},
		30:  {Link: eth1, From: at(time.Second), To: at(2 * time.Second)},
		110: {Link: eth0, From: at(10 * time.Second)},
	}
	for i := range 150 {
		if g, ok := gaps[i]; ok {
			if err := ring.AddGap(g); err != nil {
				t.Fatal(err)
			}
		}
		rec := ringfs.Record{Time: at(time.Duration(i-100) * time.Second / 10), Link: eth0, OrigLen: uint32(len(frame)), Data: frame}
		if err := ring.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	cut := func(from, to time.Duration) (Manifest, []byte) {
		t.Helper()
		dir := t.TempDir()
		w := &window.Window{ID: 1, Presses: []window.PressInfo{{Time: base.Add(from), Synced: true}}, From: base.Add(from), To: base.Add(to)}
		man, err := Cut(context.Background(), ring, w, []Spec{{Name: "all"}}, "probe", dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, filenames.Manifest(FileBase("probe", w))))
		if err != nil {
			t.Fatal(err)
		}
		return man, b
	}
	man, b := cut(0, 5*time.Second)
	want := []LinkGap{{Link: "eth1", From: base.Add(time.Second), To: base.Add(2 * time.Second)}}
	if fmt.Sprint(man.LinkGaps) != fmt.Sprint(want) {
		t.Errorf("window [0 s, 5 s): gaps %+v, want %+v", man.LinkGaps, want)
	}
	if !strings.Contains(string(b), `"link_gaps": [`) || !strings.Contains(string(b), `"link": "eth1"`) ||
		!strings.Contains(string(b), `"from": "2026-01-02T03:04:06Z"`) || !strings.Contains(string(b), `"to": "2026-01-02T03:04:07Z"`) {
		t.Errorf("manifest JSON lacks the gap:\n%s", b)
	}
	man, b = cut(3*time.Second, 12*time.Second)
	want = []LinkGap{{Link: "eth0", From: base.Add(10 * time.Second)}}
	if fmt.Sprint(man.LinkGaps) != fmt.Sprint(want) {
		t.Errorf("window [3 s, 12 s): gaps %+v, want %+v", man.LinkGaps, want)
	}
	var raw struct {
		LinkGaps []map[string]any `json:"link_gaps"`
	}
	if err := json.Unmarshal(b, &raw); err != nil || len(raw.LinkGaps) != 1 || raw.LinkGaps[0]["to"] != nil {
		t.Errorf("a link not back has no \"to\": %v %+v", err, raw.LinkGaps)
	}
	if man, b := cut(-80*time.Second, -70*time.Second); man.LinkGaps != nil || strings.Contains(string(b), "link_gaps") {
		t.Errorf("window without gaps: %+v", man.LinkGaps)
	}
}

// TestExportNamesEveryReason: a window whose start the ring no longer held
// at the press, whose files are then overtaken by the writer between two
// steps (a save too slow for the line), has a hole after ring_oldest: the
// manifest names both reasons (reason stays the first, ring_oldest where
// the files begin), also when the files were continued after a restart,
// and missing covers the hole too.
func TestExportNamesEveryReason(t *testing.T) {
	ring, link := smallRing(t)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	frame := append(exportFrame(0, 'x'), make([]byte, 900)...)
	add := func(from, to int) {
		for i := from; i < to; i++ {
			rec := ringfs.Record{Time: base.Add(time.Duration(i) * time.Millisecond).UnixNano(), Link: link, OrigLen: uint32(len(frame)), Data: frame}
			if err := ring.Append(rec); err != nil {
				t.Fatal(err)
			}
		}
		if err := ring.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	add(0, 100000) // 100 s, about 1.5 rings
	info, err := ring.Info()
	if err != nil {
		t.Fatal(err)
	}
	oldest := time.Unix(0, info.Oldest).UTC()
	press := base.Add(100 * time.Second)
	w := &window.Window{ID: 1, Presses: []window.PressInfo{{Time: press, Synced: true}}, From: oldest.Add(-10 * time.Second), To: press.Add(200 * time.Second)}
	specs := []Spec{{Name: "all"}}
	dir := t.TempDir()
	c, err := Open(ring, w, specs, "probe", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Step(context.Background(), ring, w.To, false); err != nil {
		t.Fatal(err)
	}
	prog, err := c.Sync()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	// The writer laps the files (and the service restarts) before the
	// next step.
	add(100000, 200000)
	man := resumeAndFinish(t, ring, w, specs, dir, prog)
	got := readPCAP(t, filepath.Join(dir, man.Files[0].File))
	held := int(press.Sub(oldest) / time.Millisecond) // what the first step saved
	hole := 0
	for i := 1; i < len(got); i++ {
		if d := time.Duration(got[i].ts - got[i-1].ts); d > time.Millisecond {
			hole += int(d/time.Millisecond) - 1
		}
	}
	want := []string{ringfs.ReasonNotReached, ringfs.ReasonOvertaken}
	if !man.Truncated || man.Reason != ringfs.ReasonNotReached || !slices.Equal(man.Reasons, want) || !man.RingOldest.Equal(oldest) ||
		len(got) == 0 || got[0].ts != oldest.UnixNano() || hole == 0 || len(got) < held {
		t.Errorf("manifest truncated %v reason %q reasons %v ring_oldest %v; file of %d packets from %v with a hole of %d ms; want %q, %v, %v where the file begins, a hole after the %d packets saved first",
			man.Truncated, man.Reason, man.Reasons, man.RingOldest, len(got), time.Unix(0, got[0].ts).UTC(), hole, ringfs.ReasonNotReached, want, oldest, held)
	}
	missing, err := time.ParseDuration(man.Missing)
	if lack := 10*time.Second + time.Duration(hole)*990*time.Microsecond; err != nil || missing < lack {
		t.Errorf("missing %q, want at least the start's 10s and about the hole's %dms", man.Missing, hole)
	}
}

// resumeAndFinish continues w's files in dir from prog, as a new run does,
// reads the rest of the window and finishes them.
func resumeAndFinish(t *testing.T, ring *ringfs.Ring, w *window.Window, specs []Spec, dir string, prog window.Progress) Manifest {
	t.Helper()
	c, err := Open(ring, w, specs, "probe", dir, &prog)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Step(context.Background(), ring, w.To, true); err != nil {
		t.Fatal(err)
	}
	man, err := c.Finish(nil)
	if err != nil {
		t.Fatal(err)
	}
	return man
}

// TestExportReportPerLinkAndSide: a window over two bridge ports (the
// router's side inbound on eth0, the device's on eth1) whose device side
// lost its link for 3 s inside the window (a gap record in the ring, as
// the service writes it from the ports' watch): the summary describes each
// link with its side, packets, rate and talkers, the gap inside the window
// (not the one before it), with an error finding; the page draws each
// link's rate and shades the gap; the pcapng file names the sides, and the
// report read back from it gives the same per-link figures.
func TestExportReportPerLinkAndSide(t *testing.T) {
	ring, eth0 := smallRing(t)
	eth1, err := ring.AddLink(ringfs.Link{Name: "eth1", LinkType: 1})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := reporttest.Mixed(1)
	g.Sort()
	// What the phone sends arrives on the device's side, the rest on the
	// router's.
	want := map[string]uint64{}
	for _, p := range g.Pkts {
		link, name := eth0, "eth0"
		if bytes.Equal(p.Data[26:30], []byte{192, 168, 1, 10}) {
			link, name = eth1, "eth1"
		}
		want[name]++
		if err := ring.Append(ringfs.Record{Time: p.TS, Link: link, OrigLen: uint32(len(p.Data)), Data: p.Data}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ring.Flush(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(0, g.T0)
	win := &window.Window{ID: 1, Presses: []window.PressInfo{{Time: t0.Add(5 * time.Second), Synced: true}}, From: t0, To: t0.Add(20 * time.Second)}
	sides := map[string]LinkSide{"eth0": {Side: "router", Inbound: true}, "eth1": {Side: "device", Inbound: true}}
	for _, g := range []ringfs.Gap{
		{Link: eth1, From: t0.Add(-30 * time.Second).UnixNano(), To: t0.Add(-20 * time.Second).UnixNano()}, // before the window
		{Link: eth1, From: t0.Add(14 * time.Second).UnixNano(), To: t0.Add(17 * time.Second).UnixNano()},
	} {
		if err := ring.AddGap(g); err != nil {
			t.Fatal(err)
		}
	}
	if err := ring.Flush(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	man, err := Cut(context.Background(), ring, win, []Spec{{Name: "all", Format: "pcapng", Sides: sides}}, "probe1", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := man.Summary
	if len(s.Links) != 2 {
		t.Fatalf("summary links %+v, want eth0 and eth1", s.Links)
	}
	for _, l := range s.Links {
		var rate uint64
		for _, v := range l.RatePackets {
			rate += v
		}
		if l.Packets != want[l.Name] || rate != l.Packets || l.Side != sides[l.Name].Side || len(l.TopTalkers) == 0 {
			t.Errorf("link %s: side %q, %d packets (%d in its rate bins), %d talkers; want %q, %d", l.Name, l.Side, l.Packets, rate,
				len(l.TopTalkers), sides[l.Name].Side, want[l.Name])
		}
	}
	if d := s.Links[1].Down; len(d) != 1 || d[0].Duration != "3s" || !d[0].From.Equal(t0.Add(14*time.Second)) || len(s.Links[0].Down) != 0 {
		t.Errorf("down: eth0 %+v, eth1 %+v; want eth1 down 3 s from 14 s", s.Links[0].Down, d)
	}
	found := false
	for _, f := range s.Findings {
		found = found || f.Severity == "error" && strings.Contains(f.Text, "Link eth1 (device side) was down for 3s") && f.First.Equal(t0.Add(14*time.Second))
	}
	if !found {
		t.Errorf("no finding of eth1's link down in %+v", s.Findings)
	}
	page, err := os.ReadFile(filepath.Join(dir, filenames.Report(FileBase("probe1", win))))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(page, []byte(`id="rate-link-1"`)) || !bytes.Contains(page, []byte(`class="down"`)) || !bytes.Contains(page, []byte("(device side)")) {
		t.Errorf("the page lacks the per-link graphs or the link-down time")
	}
	// The file on its own: its interfaces name the sides.
	path := filepath.Join(dir, man.Files[0].File)
	pcapfiletest.Validate(t, path)
	back := reportcheck.Read(t, path, report.Options{HeuristicRTP: true})
	for i, l := range back.Links {
		if l.Name != s.Links[i].Name || l.Side != s.Links[i].Side || l.Packets != s.Links[i].Packets {
			t.Errorf("read back from %s: link %+v, the window's %+v", man.Files[0].File, l, s.Links[i])
		}
	}
}

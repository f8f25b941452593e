// Package export cuts a window out of the ring into one file per
// export filter, with the capture report and a manifest beside them: the
// files are written under hidden partial names while the window is open and
// appear under their final names, manifest last, when it is complete.
package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/presscap/presscap/internal/safefile"
	"github.com/presscap/presscap/probe/internal/filenames"
	"github.com/presscap/presscap/probe/internal/filter"
	"github.com/presscap/presscap/probe/internal/report"
	"github.com/presscap/presscap/probe/internal/window"
	"github.com/presscap/presscap/ringfs"
	"golang.org/x/sys/unix"
)

// Spec is one file per window.
type Spec struct {
	Name   string
	Filter string // tcpdump expression; "" keeps every packet
	Link   string // only this link's packets; "" = all links
	Format string // "pcap" (default) or "pcapng"
	// Links are the ring links Link selects, a side's (config.LinksOf);
	// nil: the link named Link.
	Links []string
	// Sides are the network ports' sides by ring link name (nil in single
	// mode): pcapng files name them per interface, and mark the packets
	// of a link captured inbound only with their direction.
	Sides map[string]LinkSide
}

// selects says whether the export, with a Link, takes the ring link.
func (e Spec) selects(link string) bool {
	if e.Links == nil {
		return link == e.Link
	}
	return slices.Contains(e.Links, link)
}

// LinkSide is a ring link's side of the bridge.
type LinkSide struct {
	Side    string
	Inbound bool // captured inbound only: every packet arrived there
}

// ManifestLink is one ring link of a window and its side.
type ManifestLink struct {
	Name string `json:"name"`
	Side string `json:"side,omitempty"`
}

// Manifest describes one window's files; it is written beside them, after
// them, so a manifest means the files are complete.
type Manifest struct {
	Host string `json:"host"`
	// Profile is the button's meaning (trigger.profiles); absent without.
	Profile     string             `json:"profile,omitempty"`
	PressTime   time.Time          `json:"press_time"`
	Presses     []window.PressInfo `json:"presses"`
	From        time.Time          `json:"window_from"`
	To          time.Time          `json:"window_to"`
	ClockSynced bool               `json:"clock_synced"`
	Files       []ManifestFile     `json:"files"`
	// Links are the ring's links with their sides (network.ports), so
	// that "before" is told from "behind"; absent in single mode.
	Links []ManifestLink `json:"links,omitempty"`
	// Drops are packets the capture lost inside the window.
	Drops uint64 `json:"drops_in_window"`
	// LinkGaps are the times a link was down inside the window (the ring's
	// gap records): that link's file has no packet then because there was
	// none, not because any was lost.
	LinkGaps []LinkGap `json:"link_gaps,omitempty"`
	// Truncated: part of the window is not in the files because the ring
	// did not hold it; RingOldest says how far back the ring reached,
	// Reason why (one of the ringfs.Reason values), Missing how much of
	// the window's time (a Go duration). Reasons names every reason, Reason
	// first: a window whose start the ring no longer held can also lose
	// blocks later, to a writer that overtook the save (a hole in the
	// files after RingOldest).
	Truncated     bool      `json:"truncated,omitempty"`
	RingOldest    time.Time `json:"ring_oldest,omitzero"`
	Reason        string    `json:"reason,omitempty"`
	Reasons       []string  `json:"reasons,omitempty"`
	Missing       string    `json:"missing,omitempty"`
	CorruptBlocks int       `json:"corrupt_blocks,omitempty"`
	// CaptureNotCaughtUp is set when the window was cut before the capture
	// had written its end into the ring (a stalled disk outlasted the
	// service's wait): the files may lack the window's last packets.
	CaptureNotCaughtUp *CaptureLag `json:"capture_not_caught_up,omitempty"`
	// Recovered: the window's press came before a restart of the service
	// (an update, a crash, a power cut) and its files were written after
	// it, at ServiceStarted or after. Packets from the stop until
	// ServiceStarted are not in the files.
	Recovered      bool      `json:"recovered,omitempty"`
	ServiceStarted time.Time `json:"service_started,omitzero"`
	Created        time.Time `json:"created"`
	// Summary is the capture report of the packets the files hold (see
	// package report); the same object as `probe report -json` prints.
	Summary *report.Summary `json:"summary,omitempty"`
}

// ReasonsText says in words every reason the window is truncated, for
// the log.
func (m *Manifest) ReasonsText() string {
	reasons := m.Reasons
	if len(reasons) == 0 {
		reasons = []string{m.Reason}
	}
	words := make([]string, len(reasons))
	for i, r := range reasons {
		words[i] = truncReason(r)
	}
	return strings.Join(words, "; and ")
}

// truncReason says in words why a window is truncated.
func truncReason(reason string) string {
	switch reason {
	case ringfs.ReasonNotReached:
		return "the ring had already overwritten the window's start"
	case ringfs.ReasonOvertaken:
		return "the ring overwrote part of the window before it was read"
	case ringfs.ReasonMaxAge:
		return "ring.max_age hides the window's start"
	case ringfs.ReasonYounger:
		return "the ring began recording after the window's start"
	}
	return reason
}

// LinkGap is a time a link was down that overlaps a window, unclipped.
type LinkGap struct {
	Link string    `json:"link"`
	From time.Time `json:"from"`
	// To is when it came back; absent when the ring holds no record of
	// its return (still down when the window was cut, or the probe
	// stopped before it came back).
	To time.Time `json:"to,omitzero"`
}

// LinkGaps returns the gaps of ring's links that overlap [from, to).
func LinkGaps(ctx context.Context, ring *ringfs.Ring, from, to time.Time) ([]LinkGap, error) {
	gs, err := ring.Gaps(ctx, from.UnixNano(), to.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("link gaps: %w", err)
	}
	links := ring.Links()
	var out []LinkGap
	for _, g := range gs {
		lg := LinkGap{Link: fmt.Sprintf("link %d", g.Link), From: time.Unix(0, g.From).UTC()}
		if int(g.Link) < len(links) {
			lg.Link = links[g.Link].Name
		}
		if g.To != 0 {
			lg.To = time.Unix(0, g.To).UTC()
		}
		out = append(out, lg)
	}
	return out, nil
}

// CaptureLag says how far the capture was behind when a window was cut.
type CaptureLag struct {
	// WrittenUntil: the ring held every packet up to this time (drops
	// aside); later packets of the window may be missing.
	WrittenUntil time.Time `json:"written_until"`
	// Behind is how far that is from the window's end, Waited how long the
	// export waited for the capture, as Go durations ("1.25s").
	Behind string `json:"behind"`
	Waited string `json:"waited"`
}

// ManifestFile is one file of a window.
type ManifestFile struct {
	File    string `json:"file"`
	Name    string `json:"name"`
	Filter  string `json:"filter"`
	Link    string `json:"link,omitempty"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// FileBase is "<hostname>_<stamp>[_<profile>]", the start of every file of a window
// (see package filenames).
func FileBase(host string, w *window.Window) string {
	return filenames.WithProfile(filenames.Base(host, w.First().Time, w.Synced()), w.Profile)
}

// Retryable says whether a failed export may succeed later. Only the
// failures known to repeat (see SetupError) are final: a disk that was
// full, read-only, failing or pulled mid-export (EIO, ENODEV, ENXIO, a
// closed file), or an error nobody foresaw, keeps the press.
func Retryable(err error) bool {
	var se *SetupError
	return !errors.As(err, &se)
}

// exportFile is one of a window's files on disk.
type exportFile struct {
	*Out
	tmp    *os.File
	final  string
	hdrLen int64 // the file header's length (a resumed file has it already)
	wb     int64 // written back (sync_file_range) up to here
}

// Files are a window's files being written: opened at the press, fed the
// window's packets in steps as the ring records them (Follow), finished
// (renamed, manifest) after the window's end.
type Files struct {
	w     *window.Window
	host  string
	dir   string
	cut   *Cutter
	files []*exportFile
	prog  window.Progress // Files and the counters are filled by sync
	links []ManifestLink
	st    ringfs.ReadStats
	// an analyses the packets the files take, in the same pass; after a
	// resume it has seen only those read since. nil: no report (the
	// benchmark's reference).
	an      *report.Analyzer
	resumed bool
	// gaps are the window's link gaps, as of the last step that pushed.
	gaps []LinkGap
	// unflushed counts the bytes written since the last writeback.
	unflushed int64
}

// writebackChunk is how much a cut writes before it hands it to the disk
// itself (see writeback).
const writebackChunk = 1 << 20

// PartialName is the name a window's file has while it is written: hidden
// (the upload skips it) and the same after a restart.
func PartialName(base string, spec Spec) string {
	return PartialPrefix + filenames.Capture(base, spec.Name, formatOf(spec))
}

// SavedManifest returns the path of w's manifest (its files are saved) if
// it is in one of dirs, else "". Files an upload without a sent folder took
// are gone: that is not knowable here.
func SavedManifest(host string, w *window.Window, dirs ...string) string {
	name := filenames.Manifest(FileBase(host, w))
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return filepath.Join(d, name)
		}
	}
	return ""
}

// PartialPrefix starts the name of every partial file.
const PartialPrefix = ".partial-"

func formatOf(spec Spec) string {
	if spec.Format == "" {
		return "pcap"
	}
	return spec.Format
}

// skipWriter drops the first n bytes written: a resumed file already has
// the header its writer starts with.
type skipWriter struct {
	w *os.File
	n int64
}

func (s *skipWriter) Write(b []byte) (int, error) {
	k := int(min(int64(len(b)), s.n))
	s.n -= int64(k)
	if k == len(b) {
		return k, nil
	}
	n, err := s.w.Write(b[k:])
	return k + n, err
}

// Open creates (or, with prog, reopens where prog left them) w's
// partial files in dir.
func Open(ring *ringfs.Ring, w *window.Window, specs []Spec, host, dir string, prog *window.Progress) (*Files, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	c := &Files{w: w, host: host, dir: dir}
	if prog != nil {
		c.prog = *prog
		c.st = ringfs.ReadStats{Drops: prog.Drops, Corrupt: prog.Corrupt, Truncated: prog.Truncated,
			Reason: prog.Reason, Reasons: slices.Clone(prog.Reasons), Oldest: prog.Oldest, Missing: prog.Missing}
		if len(prog.Files) != len(specs) {
			return nil, fmt.Errorf("resume: %d partial files recorded, %d exports configured", len(prog.Files), len(specs))
		}
	}
	c.prog.Dir = dir
	if !w.Recording.IsZero() && !c.prog.Pos.Started {
		// A ring recording since before the window's start that never
		// wrapped lacks nothing: the line was quiet before its oldest
		// packet.
		c.prog.Pos.Since = w.Recording.UnixNano()
	}
	base := FileBase(host, w)
	links := ring.Links()
	alinks := make([]report.Link, len(links))
	for id, l := range links {
		alinks[id] = report.Link{Name: l.Name, LinkType: l.LinkType}
		if len(specs) > 0 {
			alinks[id].Side = specs[0].Sides[l.Name].Side
		}
	}
	c.an = report.New(alinks, report.Options{Start: w.From.UnixNano(), Press: w.First().Time.UnixNano(), HeuristicRTP: true})
	c.resumed = prog != nil
	if len(specs) > 0 && len(specs[0].Sides) > 0 {
		for _, l := range links {
			c.links = append(c.links, ManifestLink{Name: l.Name, Side: specs[0].Sides[l.Name].Side})
		}
	}
	// The meaning tcpdump -i gives the filters on the link: the capture
	// put the outer VLAN tag back into the stored frame.
	cut, err := NewCutter(links, specs, filter.Live)
	if err != nil {
		return nil, err
	}
	c.cut = cut
	for i, spec := range specs {
		f := &exportFile{Out: cut.Outs[i]}
		c.files = append(c.files, f)
		f.final = filepath.Join(dir, filenames.Capture(base, spec.Name, formatOf(spec)))
		path := filepath.Join(dir, PartialName(base, spec))
		var out io.Writer
		if prog != nil {
			fs := prog.Files[i]
			if fs.Name != spec.Name {
				c.Abort()
				return nil, fmt.Errorf("resume: partial file %d is export %q, configured is %q", i, fs.Name, spec.Name)
			}
			// The disk is the customer's: nothing there is followed,
			// and a FIFO in our file's place is not waited on.
			tmp, err := safefile.Open(path, os.O_RDWR)
			if err == nil {
				f.tmp = tmp
				var st os.FileInfo
				if st, err = tmp.Stat(); err == nil && st.Size() < fs.Size {
					err = fmt.Errorf("%s holds %d bytes, %d were made durable", path, st.Size(), fs.Size)
				}
				if err == nil {
					// Whatever came after the last sync is written again.
					err = tmp.Truncate(fs.Size)
				}
				if err == nil {
					_, err = tmp.Seek(fs.Size, io.SeekStart)
				}
			}
			if err != nil {
				c.Abort()
				return nil, fmt.Errorf("resume export %s: %w", spec.Name, err)
			}
			f.Packets, f.Bytes, f.hdrLen, f.wb = fs.Packets, fs.Bytes, fs.Header, fs.Size
			out = &skipWriter{w: tmp, n: fs.Header}
		} else {
			// Made anew, never through a symlink: one left by an earlier
			// try that is not resumed goes first (the name is ours).
			os.Remove(path)
			tmp, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
			if err != nil {
				c.Abort()
				return nil, fmt.Errorf("export %s: %w", spec.Name, err)
			}
			f.tmp = tmp
			out = tmp
		}
		comment := ""
		if !w.Synced() {
			comment = "presscap: the clock was not NTP-synced at the press; timestamps may be off"
		}
		err := cut.Open(i, out, comment)
		if err == nil && prog == nil {
			// The header alone: a resumed writer skips that many bytes.
			if err = f.W.Flush(); err == nil {
				f.hdrLen, err = f.tmp.Seek(0, io.SeekCurrent)
			}
		}
		if err != nil {
			c.Abort()
			var errno syscall.Errno
			var pe *os.PathError
			if !errors.As(err, &errno) && !errors.As(err, &pe) {
				// Not the disk: the format cannot hold these links.
				err = &SetupError{Field: "format", Err: err}
			}
			return nil, fmt.Errorf("export %s: %w", spec.Name, err)
		}
	}
	return c, nil
}

// Step writes the window's packets the ring holds beyond the last step
// (all of them up to now with push; see ringfs.Ring.Follow). to is the
// window's end as it stands (a press may extend it).
func (c *Files) Step(ctx context.Context, ring *ringfs.Ring, to time.Time, push bool) error {
	st, err := c.cut.Read(ctx, ring, c.w.From.UnixNano(), to.UnixNano(), &c.prog.Pos, push, func(r ringfs.Record, files int) error {
		// The report covers what the exports select, nothing else of the
		// household's traffic.
		if files > 0 && c.an != nil {
			c.an.Add(int(r.Link), r.Time, r.OrigLen, r.Data)
		}
		c.unflushed += int64(files * len(r.Data))
		if c.unflushed >= writebackChunk {
			return c.writeback(ctx, ring)
		}
		return nil
	})
	if err == nil {
		err = c.writeback(ctx, ring)
	}
	if err == nil && push {
		// The steps that push are the ones that complete a window (the
		// follower's do not): the gaps are asked for then, once the ring
		// holds every gap record up to now.
		c.gaps, err = LinkGaps(ctx, ring, c.w.From, to)
	}
	c.st.Drops += st.Drops
	c.st.Corrupt += st.Corrupt
	if st.Truncated {
		if !c.st.Truncated {
			c.st.Truncated, c.st.Reason, c.st.Oldest = true, st.Reason, st.Oldest
		}
		c.st.Reasons = addReasons(c.st.Reasons, st.Reason)
		c.st.Reasons = addReasons(c.st.Reasons, st.Reasons...)
		c.st.Missing += st.Missing
	}
	if err != nil {
		return fmt.Errorf("read window: %w", err)
	}
	return nil
}

// writeback hands what the cut wrote since the last time to the disk and
// waits for it, from the cut's own thread: its disk priority applies (the
// follower's is idle), not the kernel flusher's, and no backlog of dirty
// pages builds up to be flushed at normal priority later. First it waits
// (up to a second) while the ring's writer has blocks queued for the disk:
// the capture's writes come first, also on a disk without I/O priorities.
func (c *Files) writeback(ctx context.Context, ring *ringfs.Ring) error {
	c.unflushed = 0
	for end := time.Now().Add(time.Second); ring.Behind() && time.Now().Before(end) && ctx.Err() == nil; {
		time.Sleep(5 * time.Millisecond)
	}
	for _, f := range c.files {
		if err := f.W.Flush(); err != nil {
			return fmt.Errorf("export %s: %w", f.Spec.Name, err)
		}
		end, err := f.tmp.Seek(0, io.SeekCurrent)
		if err != nil {
			return fmt.Errorf("export %s: %w", f.Spec.Name, err)
		}
		if end > f.wb {
			const flags = unix.SYNC_FILE_RANGE_WAIT_BEFORE | unix.SYNC_FILE_RANGE_WRITE | unix.SYNC_FILE_RANGE_WAIT_AFTER
			if err := unix.SyncFileRange(int(f.tmp.Fd()), f.wb, end-f.wb, flags); err != nil {
				return fmt.Errorf("export %s: write back: %w", f.Spec.Name, err)
			}
			f.wb = end
		}
	}
	return nil
}

// Gaps are the times a link was down in the window (see LinkGap), known
// once a step with push has run.
func (c *Files) Gaps() []LinkGap { return c.gaps }

// Sync makes the files durable as far as they are written and returns the
// progress a restart may continue from.
func (c *Files) Sync() (window.Progress, error) {
	p := c.prog
	p.Files = nil
	for _, f := range c.files {
		if err := f.W.Flush(); err != nil {
			return p, fmt.Errorf("export %s: %w", f.Spec.Name, err)
		}
		if err := f.tmp.Sync(); err != nil {
			return p, fmt.Errorf("export %s: %w", f.Spec.Name, err)
		}
		size, err := f.tmp.Seek(0, io.SeekCurrent)
		if err != nil {
			return p, fmt.Errorf("export %s: %w", f.Spec.Name, err)
		}
		p.Files = append(p.Files, window.FileState{Name: f.Spec.Name, Size: size, Header: f.hdrLen, Packets: f.Packets, Bytes: f.Bytes})
	}
	p.Drops, p.Corrupt, p.Truncated, p.Reason, p.Reasons, p.Oldest, p.Missing =
		c.st.Drops, c.st.Corrupt, c.st.Truncated, c.st.Reason, slices.Clone(c.st.Reasons), c.st.Oldest, c.st.Missing
	return p, safefile.SyncDir(c.dir)
}

// SetWindow gives the files the window as it ended, with every press: the
// manifest says so.
func (c *Files) SetWindow(w *window.Window) { c.w = w }

// SetRing records the identity of the ring the files are read from, for
// a restart to continue only from that ring.
func (c *Files) SetRing(id string) { c.prog.Ring = id }

// Dir is where the files are written.
func (c *Files) Dir() string { return c.dir }

// Close closes the partial files and leaves them for a later start.
func (c *Files) Close() {
	for _, f := range c.files {
		if f.tmp != nil {
			f.tmp.Close()
			f.tmp = nil
		}
	}
}

// Abort closes the partial files and removes them.
func (c *Files) Abort() {
	for _, f := range c.files {
		if f.tmp != nil {
			f.tmp.Close()
			os.Remove(f.tmp.Name())
			f.tmp = nil
		}
	}
}

// Finish completes the files under their final names and writes the
// manifest. lag, if not nil, goes into the manifest.
func (c *Files) Finish(lag *CaptureLag) (Manifest, error) {
	w := c.w
	man := Manifest{Host: c.host, Profile: c.w.Profile, PressTime: w.First().Time.UTC(), Presses: w.Presses,
		From: w.From.UTC(), To: w.To.UTC(), ClockSynced: w.Synced(), CaptureNotCaughtUp: lag,
		Recovered: w.Recovered, Links: c.links, LinkGaps: c.gaps}
	if w.Recovered {
		man.ServiceStarted = w.Restarted.UTC()
	}
	man.Drops, man.CorruptBlocks = c.st.Drops, c.st.Corrupt
	man.noteLoss(w, c.st)
	for _, f := range c.files {
		if err := finishFile(f); err != nil {
			c.Abort()
			return man, fmt.Errorf("export %s: %w", f.Spec.Name, err)
		}
	}
	// The report goes beside the window's files before the manifest, so a
	// manifest means it is there too.
	base := FileBase(c.host, w)
	var page bytes.Buffer
	if c.an != nil {
		c.an.CaptureLoss(c.st.Drops, time.Duration(c.st.Missing), c.st.Reason)
		c.an.SetEnd(w.To.UnixNano())
		for _, g := range c.gaps {
			to := int64(0) // not back
			if !g.To.IsZero() {
				to = g.To.UnixNano()
			}
			c.an.LinkDown(g.Link, g.From.UnixNano(), to)
		}
		man.Summary = c.an.Summary()
		if c.resumed {
			man.Summary.Notes = append(man.Summary.Notes, "The service restarted while this window was saved: "+
				"the report covers only the packets read after the restart (the files hold them all).")
		}
		if err := report.WriteHTML(&page, man.Summary, "Capture report: "+base); err != nil {
			c.Abort()
			return man, fmt.Errorf("export report: %w", err)
		}
	}
	// Only now do the final names appear.
	for _, f := range c.files {
		if err := os.Rename(f.tmp.Name(), f.final); err != nil {
			c.Abort()
			return man, fmt.Errorf("export %s: %w", f.Spec.Name, err)
		}
		f.tmp = nil
		man.Files = append(man.Files, ManifestFile{File: filepath.Base(f.final), Name: f.Spec.Name,
			Filter: f.Spec.Filter, Link: f.Spec.Link, Packets: f.Packets, Bytes: f.Bytes})
	}
	if c.an != nil {
		if err := safefile.WriteFile(filepath.Join(c.dir, filenames.Report(base)), page.Bytes(), 0o600); err != nil {
			return man, fmt.Errorf("export report: %w", err)
		}
	}
	man.Created = time.Now().UTC()
	b, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return man, err
	}
	// 0600, the mode the PCAP files get.
	if err := safefile.WriteFile(filepath.Join(c.dir, filenames.Manifest(base)), append(b, '\n'), 0o600); err != nil {
		return man, fmt.Errorf("export manifest: %w", err)
	}
	return man, safefile.SyncDir(c.dir)
}

// Cut cuts the window out of ring into one file per spec in dir, then
// writes the manifest. Every file is written under a temporary name,
// synced and renamed, so dir never holds a partial file under a final name.
// lag, if not nil, goes into the manifest: the capture had not written the
// whole window yet.
func Cut(ctx context.Context, ring *ringfs.Ring, w *window.Window, specs []Spec, host, dir string, lag *CaptureLag) (Manifest, error) {
	c, err := Open(ring, w, specs, host, dir, nil)
	if err != nil {
		return Manifest{}, err
	}
	if err := c.Step(ctx, ring, w.To, true); err != nil {
		c.Abort()
		return Manifest{}, err
	}
	return c.Finish(lag)
}

// noteLoss puts what the ring lacked of w into the manifest. A ring that
// began recording in this run after the start (a restart, a new disk)
// lacks the time before, whatever older packets it still holds.
func (m *Manifest) noteLoss(w *window.Window, st ringfs.ReadStats) {
	from := w.From.UnixNano()
	if !st.Truncated && !w.Recovered && w.Recording.After(w.From) {
		st.Truncated, st.Reason = true, ringfs.ReasonYounger
		st.Oldest, st.Missing = w.Recording.UnixNano(), min(w.Recording.UnixNano(), w.To.UnixNano())-from
	}
	if !st.Truncated {
		return
	}
	m.Truncated, m.Reason = true, st.Reason
	m.Reasons = addReasons([]string{st.Reason}, st.Reasons...)
	if st.Oldest != 0 {
		m.RingOldest = time.Unix(0, st.Oldest).UTC()
	}
	m.Missing = time.Duration(st.Missing).Round(time.Millisecond).String()
}

// addReasons appends to list the reasons it lacks, in order.
func addReasons(list []string, reasons ...string) []string {
	for _, r := range reasons {
		if r != "" && !slices.Contains(list, r) {
			list = append(list, r)
		}
	}
	return list
}

func finishFile(f *exportFile) error {
	if err := f.W.Flush(); err != nil {
		return err
	}
	if err := f.tmp.Sync(); err != nil {
		return err
	}
	return f.tmp.Close()
}

// A window's files are written from the press on, not after its end: the
// part of the window already in the ring ([press − before, press)) is read
// at once, before a fast line makes the ring overwrite it, and the rest is
// followed as the capture writes it. Each window has its own follower, so a
// long window never holds up another's save.
const (
	// FollowStep is how often a follower reads what the ring gained.
	FollowStep = 250 * time.Millisecond
	// FollowSync is how often it makes its files durable and records how
	// far they go in the pending record, for a restart to continue there.
	FollowSync = 2 * time.Second
)

// IOPrioIdle puts the calling thread's disk I/O in the idle class: a
// save's reads and writes wait while the ring's writer uses the disk.
func IOPrioIdle() error {
	const whoProcess, classIdle, classShift = 1, 3, 13
	_, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, whoProcess, 0, classIdle<<classShift)
	if errno != 0 {
		return errno
	}
	return nil
}

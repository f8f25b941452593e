package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/presscap/presscap/probe/filter"
	"github.com/presscap/presscap/probe/pcapfile"
	"github.com/presscap/presscap/ringfs"
	"github.com/presscap/presscap/ringfs/atomicfile"
)

// ExportSpec is one file per window.
type ExportSpec struct {
	Name   string
	Filter string // tcpdump expression; "" keeps every packet
	Link   string // only this link's packets; "" = all links
	Format string // "pcap" (default) or "pcapng"
}

// Manifest describes one window's files; it is written beside them, after
// them, so a manifest means the files are complete.
type Manifest struct {
	Host        string         `json:"host"`
	PressTime   time.Time      `json:"press_time"`
	Presses     []PressInfo    `json:"presses"`
	From        time.Time      `json:"window_from"`
	To          time.Time      `json:"window_to"`
	ClockSynced bool           `json:"clock_synced"`
	Files       []ManifestFile `json:"files"`
	// Drops are packets the capture lost inside the window.
	Drops uint64 `json:"drops_in_window"`
	// Truncated: part of the window is not in the files because the ring
	// did not hold it; RingOldest says how far back the ring reached,
	// Reason why (one of the ringfs.Reason values), Missing how much of
	// the window's time (a Go duration).
	Truncated     bool      `json:"truncated,omitempty"`
	RingOldest    time.Time `json:"ring_oldest,omitzero"`
	Reason        string    `json:"reason,omitempty"`
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

// FileStamp is the press time as it appears in file names: UTC, to the
// millisecond, with "-unsynced" when the clock was not synced.
func FileStamp(t time.Time, synced bool) string {
	s := t.UTC().Format("20060102T150405.000Z")
	if !synced {
		s += "-unsynced"
	}
	return s
}

// FileBase is "<hostname>_<stamp>", the start of every file of a window.
func FileBase(host string, w *Window) string {
	return host + "_" + FileStamp(w.First().Time, w.Synced())
}

// setupError is an export failure that comes out the same on every try:
// a filter that does not compile, a link the ring does not hold, a format
// that cannot hold the links. Anything else (the disk, the ring's reads)
// may mend.
type setupError struct{ err error }

func (e setupError) Error() string { return e.err.Error() }
func (e setupError) Unwrap() error { return e.err }

type exportFile struct {
	spec    ExportSpec
	m       *filter.Matcher
	links   map[uint16]int // ring link id → interface index in the file
	tmp     *os.File
	pw      pcapfile.PacketWriter // buffers on its own; Flush before Sync
	final   string
	packets uint64
	bytes   uint64
}

// Export cuts the window out of ring into one file per spec in dir, then
// writes the manifest. Every file is written under a temporary name,
// synced and renamed, so dir never holds a partial file under a final name.
// lag, if not nil, goes into the manifest: the capture had not written the
// whole window yet.
func Export(ctx context.Context, ring *ringfs.Ring, w *Window, specs []ExportSpec, host, dir string, lag *CaptureLag) (Manifest, error) {
	man := Manifest{Host: host, PressTime: w.First().Time.UTC(), Presses: w.Presses,
		From: w.From.UTC(), To: w.To.UTC(), ClockSynced: w.Synced(), CaptureNotCaughtUp: lag,
		Recovered: w.Recovered}
	if w.Recovered {
		man.ServiceStarted = w.Restarted.UTC()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return man, fmt.Errorf("export: %w", err)
	}
	base := FileBase(host, w)
	links := ring.Links()
	var files []*exportFile
	cleanup := func() {
		for _, f := range files {
			if f.tmp != nil {
				f.tmp.Close()
				os.Remove(f.tmp.Name())
			}
		}
	}
	for _, spec := range specs {
		f := &exportFile{spec: spec, links: map[uint16]int{}}
		files = append(files, f)
		if spec.Filter != "" {
			// The meaning tcpdump -i gives the filter on the link: the
			// capture put the outer VLAN tag back into the stored frame.
			m, err := filter.NewLiveMatcher(spec.Filter)
			if err != nil {
				cleanup()
				return man, fmt.Errorf("export %s: %w", spec.Name, setupError{err})
			}
			f.m = m
		}
		var ifaces []pcapfile.Interface
		for id, l := range links {
			if spec.Link != "" && l.Name != spec.Link {
				continue
			}
			f.links[uint16(id)] = len(ifaces)
			ifaces = append(ifaces, pcapfile.Interface{Name: l.Name, LinkType: l.LinkType, SnapLen: l.SnapLen})
		}
		if len(ifaces) == 0 {
			cleanup()
			return man, fmt.Errorf("export %s: %w", spec.Name, setupError{fmt.Errorf("link %q is not in the ring", spec.Link)})
		}
		format := spec.Format
		if format == "" {
			format = "pcap"
		}
		f.final = filepath.Join(dir, base+"_"+spec.Name+"."+format)
		tmp, err := os.CreateTemp(dir, ".tmp-"+spec.Name+"-*")
		if err != nil {
			cleanup()
			return man, fmt.Errorf("export %s: %w", spec.Name, err)
		}
		f.tmp = tmp
		comment := ""
		if !w.Synced() {
			comment = "presscap: the clock was not NTP-synced at the press; timestamps may be off"
		}
		f.pw, err = pcapfile.NewWriter(tmp, format, ifaces, comment)
		if err != nil {
			cleanup()
			var errno syscall.Errno
			var pe *os.PathError
			if !errors.As(err, &errno) && !errors.As(err, &pe) {
				// Not the disk: the format cannot hold these links.
				err = setupError{err}
			}
			return man, fmt.Errorf("export %s: %w", spec.Name, err)
		}
	}

	st, err := ring.Read(ctx, w.From.UnixNano(), w.To.UnixNano(), func(r ringfs.Record) error {
		for _, f := range files {
			idx, ok := f.links[r.Link]
			if !ok {
				continue
			}
			// len, less and greater judge the length on the wire, also
			// for packets a ring rule sliced.
			if f.m != nil && !f.m.MatchLen(r.Data, int(r.OrigLen)) {
				continue
			}
			if err := f.pw.WritePacket(idx, r.Time, r.OrigLen, r.Data); err != nil {
				return fmt.Errorf("export %s: %w", f.spec.Name, err)
			}
			f.packets++
			f.bytes += uint64(len(r.Data))
		}
		return nil
	})
	if err != nil {
		cleanup()
		return man, fmt.Errorf("read window: %w", err)
	}
	man.Drops, man.CorruptBlocks = st.Drops, st.Corrupt
	man.noteLoss(w, st)
	for _, f := range files {
		if err := finish(f); err != nil {
			cleanup()
			return man, fmt.Errorf("export %s: %w", f.spec.Name, err)
		}
	}
	// Only now do the final names appear.
	for _, f := range files {
		if err := os.Rename(f.tmp.Name(), f.final); err != nil {
			cleanup()
			return man, fmt.Errorf("export %s: %w", f.spec.Name, err)
		}
		f.tmp = nil
		man.Files = append(man.Files, ManifestFile{File: filepath.Base(f.final), Name: f.spec.Name,
			Filter: f.spec.Filter, Link: f.spec.Link, Packets: f.packets, Bytes: f.bytes})
	}
	man.Created = time.Now().UTC()
	b, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return man, err
	}
	// 0600, the mode the PCAP files get from os.CreateTemp.
	if err := atomicfile.WriteFile(filepath.Join(dir, base+"_manifest.json"), append(b, '\n'), 0o600); err != nil {
		return man, fmt.Errorf("export manifest: %w", err)
	}
	return man, syncDir(dir)
}

// noteLoss puts what the ring lacked of w into the manifest. A ring that
// has been recording since before the window's start and never wrapped
// lacks nothing: the line was quiet before its oldest packet. One that
// began recording in this run after the start (a restart, a new disk)
// lacks the time before, whatever older packets it still holds.
func (m *Manifest) noteLoss(w *Window, st ringfs.ReadStats) {
	from := w.From.UnixNano()
	if st.Truncated && st.Reason == ringfs.ReasonYounger && !w.recording.IsZero() && !w.recording.After(w.From) {
		st = ringfs.ReadStats{}
	}
	if !st.Truncated && !w.Recovered && w.recording.After(w.From) {
		st.Truncated, st.Reason = true, ringfs.ReasonYounger
		st.Oldest, st.Missing = w.recording.UnixNano(), min(w.recording.UnixNano(), w.To.UnixNano())-from
	}
	if !st.Truncated {
		return
	}
	m.Truncated, m.Reason = true, st.Reason
	if st.Oldest != 0 {
		m.RingOldest = time.Unix(0, st.Oldest).UTC()
	}
	m.Missing = time.Duration(st.Missing).Round(time.Millisecond).String()
}

func finish(f *exportFile) error {
	if err := f.pw.Flush(); err != nil {
		return err
	}
	if err := f.tmp.Sync(); err != nil {
		return err
	}
	return f.tmp.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

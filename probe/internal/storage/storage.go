// Package storage keeps the ring on the USB disk: it finds the disk (by
// label, first USB partition or configured device), mounts it so that
// nothing on it is followed or run, opens or creates the ring, and when the
// disk is missing, full, read-only or pulled says so and tries again; the
// /perm fallback serves while no disk is usable.
package storage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/presscap/presscap/ringfs"
	"golang.org/x/sys/unix"
)

// Disk states, as the status page and the LED show them.
const (
	DiskRecording = "recording"
	DiskMissing   = "no disk"
	DiskReadOnly  = "read-only"
	DiskFull      = "full"
	DiskFailed    = "failed"
)

// ErrDiskFull means the disk has no room for the ring.
var ErrDiskFull = errors.New("disk is full")

// State is what the storage manager reports.
type State struct {
	State  string `json:"state"`
	Device string `json:"device,omitempty"`
	How    string `json:"how,omitempty"` // how the device was chosen
	Root   string `json:"root,omitempty"`
	Error  string `json:"error,omitempty"`
	// Replaced, while recording, says which unusable ring was replaced
	// when the ring was opened, and why.
	Replaced string    `json:"replaced,omitempty"`
	Since    time.Time `json:"since"`
}

// Config is what the storage manager needs from the configuration.
type Config struct {
	Finder       DiskFinder
	MountPoint   string
	FSTypes      []string
	FallbackPerm bool
	PermDir      string
	RingDir      string // relative to the root
	// Dirs are the other directories the probe uses under the root (the
	// upload queue, the save dir): each must be a real directory under
	// exactly that name, or missing, for the disk to be used.
	Dirs     []string
	RingSize int64
	MaxAge   time.Duration
	// Encrypt creates the ring encrypted; KeyDir (the state directory on
	// the SD card, never the USB disk) keeps the keys of encrypted rings.
	Encrypt  bool
	KeyDir   string
	Retry    time.Duration
	Links    []string // capture link names, in capture id order
	LinkType uint32
	SnapLen  uint32
}

// Manager keeps a ring open on the USB disk: it finds and mounts the disk,
// opens or creates the ring, hands it to the capture through its Sink, and
// when the disk is missing, full, read-only or pulled it says so and tries
// again every Retry.
type Manager struct {
	cfg  Config
	logf func(string, ...any)
	// OnChange is called (from the storage goroutine) after each state
	// change, for the LED.
	OnChange func(State)
	// Busy, if set and true, delays the move off the /perm fallback: a
	// window open or being saved would be cut from a ring without its start.
	Busy func() bool

	mu      sync.Mutex
	state   State
	ring    *ringfs.Ring
	ids     []uint16  // capture link index → ring link id
	ringID  string    // see RingID
	opened  time.Time // when the open ring began recording
	dev     string
	mounted bool
	faults  chan error
	// down holds the links that are down (LinkChanged), since when (Unix
	// ns): a ring opened later records their gap too.
	down map[string]int64
}

// New returns a manager; Run starts it.
func New(cfg Config, logf func(string, ...any)) *Manager {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Manager{cfg: cfg, logf: logf, faults: make(chan error, 1), down: map[string]int64{},
		state: State{State: DiskMissing, Since: time.Now()}}
}

// State returns the current state.
func (s *Manager) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// Ring returns the open ring and the storage root, or an error saying why
// there is none.
func (s *Manager) Ring() (*ringfs.Ring, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ring == nil {
		msg := s.state.State
		if s.state.Error != "" {
			msg += ": " + s.state.Error
		}
		return nil, "", fmt.Errorf("no ring (%s)", msg)
	}
	return s.ring, s.state.Root, nil
}

// RingWithID is Ring plus the open ring's identity (see RingID), taken
// together so that they belong to the same ring.
func (s *Manager) RingWithID() (ring *ringfs.Ring, root, id string, err error) {
	ring, root, err = s.Ring()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || ring != s.ring {
		return nil, "", "", fmt.Errorf("no ring (%s)", s.state.State)
	}
	return ring, root, s.ringID, nil
}

// RingID identifies the open ring ("" if none): its ring_id, which ringfs
// draws at random when it creates a ring, so a ring on the /perm fallback
// is never taken for the one on the USB disk.
func (s *Manager) RingID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ring == nil {
		return ""
	}
	return s.ringID
}

// Opened is when the open ring began recording in this run (zero if
// none): it holds nothing from the time before.
func (s *Manager) Opened() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ring == nil {
		return time.Time{}
	}
	return s.opened
}

// ringID formats a ring's identity for records and logs.
func ringID(r *ringfs.Ring) string { return fmt.Sprintf("%016x", r.ID()) }

// Append implements the capture's sink: it writes to the current ring, or
// refuses while there is none (the capture counts those as write drops).
func (s *Manager) Append(r ringfs.Record) error {
	s.mu.Lock()
	ring := s.ring
	if ring != nil && int(r.Link) < len(s.ids) {
		r.Link = s.ids[r.Link]
	}
	s.mu.Unlock()
	if ring == nil {
		return errNoRing
	}
	if err := ring.Append(r); err != nil {
		s.faultOn(ring, err)
		return err
	}
	return nil
}

// AddDrops implements the capture's sink.
func (s *Manager) AddDrops(link uint16, at int64, n uint64) error {
	s.mu.Lock()
	ring := s.ring
	if ring != nil && int(link) < len(s.ids) {
		link = s.ids[link]
	}
	s.mu.Unlock()
	if ring == nil {
		return errNoRing
	}
	if err := ring.AddDrops(link, at, n); err != nil {
		s.faultOn(ring, err)
		return err
	}
	return nil
}

var errNoRing = errors.New("no ring: disk not available")

// LinkChanged records that the ring link name went down (up false) or came
// back at at: a gap record when it goes down, and one with its end when
// it comes back, so that a window's manifest can tell a link with nothing
// to capture from a capture that lost packets. Without a ring now, the
// gap is recorded when one opens (see resumeGaps).
func (s *Manager) LinkChanged(name string, up bool, at time.Time) {
	s.mu.Lock()
	from, wasDown := s.down[name]
	switch {
	case !up && !wasDown:
		s.down[name] = at.UnixNano()
		from = at.UnixNano()
	case up && wasDown:
		delete(s.down, name)
	default:
		s.mu.Unlock()
		return // no change
	}
	ring := s.ring
	s.mu.Unlock()
	if ring == nil {
		return
	}
	g := ringfs.Gap{From: from}
	if up {
		g.To = max(from, at.UnixNano())
	}
	s.addGap(ring, name, g)
}

// addGap writes g for the link name to ring.
func (s *Manager) addGap(ring *ringfs.Ring, name string, g ringfs.Gap) {
	id := slices.IndexFunc(ring.Links(), func(l ringfs.Link) bool { return l.Name == name })
	if id < 0 {
		return // not a captured link
	}
	g.Link = uint16(id)
	if err := ring.AddGap(g); err != nil {
		s.logf("storage: link %s gap not recorded: %v", name, err)
		s.faultOn(ring, err)
	}
}

// openGaps reads the gaps a ring just opened holds open (a probe stopped
// while a link was down), for resumeGapsLocked.
func (s *Manager) openGaps(ring *ringfs.Ring) []ringfs.Gap {
	gs, err := ring.Gaps(context.Background(), math.MinInt64, math.MaxInt64)
	if err != nil {
		s.logf("storage: gaps of the ring: %v", err)
	}
	return slices.DeleteFunc(gs, func(g ringfs.Gap) bool { return g.To != 0 })
}

// resumeGapsLocked brings the ring just installed up to date with the
// links' state, under s.mu so that no LinkChanged falls between: a gap it
// holds open continues if the link is down now, or else ends now, the
// earliest the probe saw it back; a link that went down while there was
// no ring gets its gap.
func (s *Manager) resumeGapsLocked(ring *ringfs.Ring, open []ringfs.Gap, now time.Time) {
	links := ring.Links()
	continued := map[string]bool{}
	for _, g := range open {
		if int(g.Link) >= len(links) {
			continue
		}
		name := links[g.Link].Name
		if since, down := s.down[name]; down {
			s.down[name] = min(since, g.From)
			continued[name] = true
			continue
		}
		g.To = max(g.From, now.UnixNano())
		if err := ring.AddGap(g); err != nil {
			s.logf("storage: link %s gap not closed: %v", name, err)
		}
	}
	for name, since := range s.down {
		if continued[name] {
			continue
		}
		if id := slices.IndexFunc(links, func(l ringfs.Link) bool { return l.Name == name }); id >= 0 {
			if err := ring.AddGap(ringfs.Gap{Link: uint16(id), From: since}); err != nil {
				s.logf("storage: link %s gap not recorded: %v", name, err)
			}
		}
	}
}

// faultOn reports err unless ring is no longer the open one (a write that
// raced with the move off the /perm fallback, whose ring was closed).
func (s *Manager) faultOn(ring *ringfs.Ring, err error) {
	s.mu.Lock()
	cur := s.ring == ring
	s.mu.Unlock()
	if cur {
		s.fault(err)
	}
}

// fault reports a write error from any goroutine; Run handles it.
func (s *Manager) fault(err error) {
	select {
	case s.faults <- err:
	default:
	}
}

// Run manages the disk until ctx is done, then closes the ring and
// unmounts.
func (s *Manager) Run(ctx context.Context) error {
	retry := s.cfg.Retry
	if retry <= 0 {
		retry = 5 * time.Second
	}
	t := time.NewTicker(retry)
	defer t.Stop()
	defer s.detach("service stopping", nil)
	for {
		s.mu.Lock()
		have := s.ring != nil
		s.mu.Unlock()
		if !have {
			s.attach()
		} else if err := s.check(); err != nil {
			s.detach(DiskFailed, err)
		} else {
			s.leavePerm()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-s.faults:
			s.detach(DiskFailed, err)
		case <-t.C:
		}
	}
}

func (s *Manager) setState(st State) {
	s.mu.Lock()
	changed := st.State != s.state.State || st.Error != s.state.Error || st.Device != s.state.Device
	if changed {
		st.Since = time.Now()
		s.state = st
	}
	s.mu.Unlock()
	if changed {
		if st.Error != "" {
			s.logf("storage: %s: %s", st.State, st.Error)
		} else {
			s.logf("storage: %s on %s (%s), root %s", st.State, st.Device, st.How, st.Root)
		}
		if s.OnChange != nil {
			s.OnChange(st)
		}
	}
}

// attach finds a disk (or /perm), mounts it and opens the ring.
func (s *Manager) attach() {
	dev, how, err := s.cfg.Finder.Find()
	var root string
	if err == nil {
		_, err = mount(dev, s.cfg.MountPoint, s.cfg.FSTypes)
		if err == nil {
			root = s.cfg.MountPoint
			s.mounted = true
		}
	}
	if err != nil && s.cfg.FallbackPerm {
		s.logf("storage: %v; falling back to %s", err, s.cfg.PermDir)
		dev, how, root, err = "/perm", "fallback_perm", s.cfg.PermDir, os.MkdirAll(s.cfg.PermDir, 0o755)
	}
	if err != nil {
		s.setState(State{State: stateFor(err), Device: dev, How: how, Error: err.Error()})
		return
	}
	ring, ids, replaced, err := s.openRing(root)
	if err != nil {
		if s.mounted {
			unmount(s.cfg.MountPoint)
			s.mounted = false
		}
		s.setState(State{State: stateFor(err), Device: dev, How: how, Error: err.Error()})
		return
	}
	id := ringID(ring)
	open := s.openGaps(ring)
	s.mu.Lock()
	s.ring, s.ids, s.dev, s.ringID, s.opened = ring, ids, dev, id, time.Now()
	s.resumeGapsLocked(ring, open, s.opened)
	s.mu.Unlock()
	// Drain a fault left from the previous disk.
	select {
	case <-s.faults:
	default:
	}
	s.setState(State{State: DiskRecording, Device: dev, How: how, Root: root, Replaced: replaced})
}

func stateFor(err error) string {
	switch {
	case errors.Is(err, ErrNoDisk):
		return DiskMissing
	case errors.Is(err, ErrReadOnly):
		return DiskReadOnly
	case errors.Is(err, ErrDiskFull):
		return DiskFull
	}
	return DiskFailed
}

// openRing opens the ring under root, or creates it as large as configured
// and as the free space allows (leaving room for the exported files). A
// ring of ours that can never be opened again (unusable) is replaced, and
// replaced says why.
func (s *Manager) openRing(root string) (_ *ringfs.Ring, _ []uint16, replaced string, _ error) {
	if err := writeTest(root); err != nil {
		return nil, nil, "", err
	}
	// The disk is the customer's: a directory of ours that is a symlink,
	// a file or a case variant is theirs, and is neither followed nor used.
	for _, d := range append([]string{s.cfg.RingDir}, s.cfg.Dirs...) {
		if err := CheckDir(root, d, false); err != nil {
			return nil, nil, "", err
		}
	}

	dir := filepath.Join(root, s.cfg.RingDir)
	opts := ringfs.Options{MaxAge: s.cfg.MaxAge, KeyDir: s.cfg.KeyDir}
	ring, err := ringfs.Open(dir, opts)
	if err == nil && s.cfg.Encrypt && !ring.Encrypted() {
		// ring.json is on the untrusted disk: "encrypted":false there
		// must not make the probe record the household in clear.
		ring.Close()
		err = errClearRing
	}
	if err != nil {
		// A ring.json or segment that is a FIFO or device is theirs.
		if errors.Is(err, ringfs.ErrOccupied) {
			return nil, nil, "", fmt.Errorf("%w: %w", err, ErrRefusedLayout)
		}
		if why := unusable(err, s.cfg.KeyDir); why != "" {
			// Ours, and never usable again: left, it would stop
			// recording for good (and a remote update with it).
			if s.cfg.Encrypt || errors.Is(err, ringfs.ErrNoKey) || errors.Is(err, ringfs.ErrWrongKey) {
				// Nothing could be created in its place, or the key
				// is only out of reach (the state dir not mounted).
				// %v: the state dir on the SD card, not the disk, is
				// what takes no writes.
				if kerr := writeTest(s.cfg.KeyDir); kerr != nil {
					return nil, nil, "", fmt.Errorf("open ring %s: %w; not replaced: key directory: %v", dir, err, kerr)
				}
			}
			if rerr := ringfs.Remove(dir); rerr != nil {
				if errors.Is(rerr, ringfs.ErrOccupied) {
					rerr = fmt.Errorf("%w: %w", rerr, ErrRefusedLayout)
				}
				return nil, nil, "", fmt.Errorf("open ring %s: %w; not replaced: %w", dir, err, rerr)
			}
			replaced = fmt.Sprintf("replaced the ring in %s (%s; its packets are lost): %v", dir, why, err)
			s.logf("storage: %s", replaced)
		} else if ok, serr := ringfs.Exists(dir); ok || serr != nil {
			// Any other ring that does not open is reported, never
			// replaced: a disk error may pass, and a ring.json
			// that is not ours is the customer's.
			return nil, nil, "", fmt.Errorf("open ring %s: %w", dir, err)
		}
		// Refused before sizing: the customer's directory under our
		// name is the reason, whatever the free space.
		if verr := ringfs.Vacant(dir); errors.Is(verr, ringfs.ErrOccupied) {
			return nil, nil, "", fmt.Errorf("%w: %w", verr, ErrRefusedLayout)
		}
		free, total, ferr := freeBytes(root)
		if ferr != nil {
			return nil, nil, "", fmt.Errorf("statfs %s: %w", root, ferr)
		}
		reserve := max(total/10, 32<<20) // room for the files of many presses
		size := min(s.cfg.RingSize, free-reserve)
		size -= size % (1 << 20)
		if size < ringfs.MinSize {
			return nil, nil, "", fmt.Errorf("%s: %d MiB free, the ring needs %d MiB plus %d MiB for files: %w",
				root, free>>20, ringfs.MinSize>>20, reserve>>20, ErrDiskFull)
		}
		if size < s.cfg.RingSize {
			s.logf("storage: only %d MiB free on %s: ring of %d MiB instead of %d MiB", free>>20, root, size>>20, s.cfg.RingSize>>20)
		}
		opts.Size, opts.Encrypt = size, s.cfg.Encrypt
		ring, err = ringfs.Create(dir, opts)
		if err != nil {
			// Create removed what it made, and only that.
			if errors.Is(err, ringfs.ErrOccupied) {
				return nil, nil, "", fmt.Errorf("%w: %w", err, ErrRefusedLayout)
			}
			if errors.Is(err, unix.ENOSPC) {
				err = fmt.Errorf("%w: %v", ErrDiskFull, err)
			}
			return nil, nil, "", fmt.Errorf("create ring %s: %w", dir, err)
		}
		s.logf("storage: created a %d MiB ring in %s", size>>20, dir)
	}
	ids := make([]uint16, len(s.cfg.Links))
	for i, name := range s.cfg.Links {
		id, err := ring.AddLink(ringfs.Link{Name: name, LinkType: s.cfg.LinkType, SnapLen: s.cfg.SnapLen})
		if err != nil {
			ring.Close()
			return nil, nil, "", fmt.Errorf("ring %s: add link %s: %w", dir, name, err)
		}
		ids[i] = id
	}
	return ring, ids, replaced, nil
}

// errClearRing: the ring opened clear while ring.encrypt is set. It is never
// recorded into, whatever its ring.json says, and is replaced by an encrypted one.
var errClearRing = errors.New("the ring is not encrypted and ring.encrypt is set")

// unusable says why the ring that failed to open with err is ours but can
// never be used again, or "" if it may be (a disk error passes), is not
// ours, or its key was never looked for (no key directory configured).
func unusable(err error, keyDir string) string {
	switch {
	case errors.Is(err, ringfs.ErrOccupied):
		return ""
	case errors.Is(err, ringfs.ErrOldFormat):
		return "old format"
	case errors.Is(err, errClearRing):
		return "not encrypted"
	case keyDir == "":
		return ""
	case errors.Is(err, ringfs.ErrNoKey):
		return "key missing"
	case errors.Is(err, ringfs.ErrWrongKey):
		return "key mismatch"
	}
	return ""
}

// writeTest tells a disk that takes no writes (read-only, whatever the
// mount says) or has no room. The test file is created anew and never
// through a symlink: one planted under its name (say to /perm/gokr-pw.txt)
// refuses the disk instead.
func writeTest(root string) error {
	path := filepath.Join(root, ".presscap-write-test")
	create := func() (*os.File, error) {
		return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	}
	f, err := create()
	if errors.Is(err, fs.ErrExist) {
		st, lerr := os.Lstat(path)
		if lerr == nil && !st.Mode().IsRegular() {
			target, _ := os.Readlink(path)
			if target != "" {
				target = fmt.Sprintf(" (to %q)", target)
			}
			return fmt.Errorf("%s is a %s%s, not the probe's write test: not followed: %w", path, kind(st.Mode()), target, ErrRefusedLayout)
		}
		// A power cut between create and remove left ours.
		os.Remove(path)
		f, err = create()
	}
	if err == nil {
		_, err = f.Write([]byte("ok"))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		os.Remove(path)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EROFS):
		return fmt.Errorf("%s: %w", root, ErrReadOnly)
	case errors.Is(err, unix.ENOSPC):
		return fmt.Errorf("%s: %w", root, ErrDiskFull)
	}
	return fmt.Errorf("write test on %s: %w", root, err)
}

// leavePerm moves from the /perm fallback to a disk that appeared, once
// its ring is open: the fallback is only for while no disk is usable.
func (s *Manager) leavePerm() {
	s.mu.Lock()
	dev := s.dev
	s.mu.Unlock()
	if dev != "/perm" || (s.Busy != nil && s.Busy()) {
		return
	}
	dev, how, err := s.cfg.Finder.Find()
	if err != nil {
		return
	}
	if _, err := mount(dev, s.cfg.MountPoint, s.cfg.FSTypes); err != nil {
		return
	}
	ring, ids, replaced, err := s.openRing(s.cfg.MountPoint)
	if err != nil {
		unmount(s.cfg.MountPoint)
		return
	}
	s.mounted = true
	id := ringID(ring)
	s.mu.Lock()
	old := s.ring
	s.ring, s.ids, s.dev, s.ringID, s.opened = ring, ids, dev, id, time.Now()
	s.mu.Unlock()
	if err := old.Close(); err != nil {
		s.logf("storage: closing the /perm ring: %v", err)
	}
	s.logf("storage: disk %s appeared: leaving the /perm fallback", dev)
	s.setState(State{State: DiskRecording, Device: dev, How: how, Root: s.cfg.MountPoint, Replaced: replaced})
}

// check notices a disk that went away while no packet was written.
func (s *Manager) check() error {
	s.mu.Lock()
	dev, root := s.dev, s.state.Root
	s.mu.Unlock()
	if dev != "/perm" {
		if _, err := os.Stat(dev); err != nil {
			return fmt.Errorf("device %s gone: %w", dev, err)
		}
		if src, _ := mountedAt(root); src == "" {
			return fmt.Errorf("%s is no longer mounted", root)
		}
	}
	if ok, err := ringfs.Exists(filepath.Join(root, s.cfg.RingDir)); err != nil || !ok {
		return fmt.Errorf("ring vanished: %w", cmp.Or(err, ringfs.ErrNoRing))
	}
	return nil
}

// detach closes the ring and unmounts after a fault (or at shutdown).
func (s *Manager) detach(state string, cause error) {
	s.mu.Lock()
	ring := s.ring
	s.ring, s.ids = nil, nil
	s.mu.Unlock()
	if ring != nil {
		if err := ring.Close(); err != nil && cause != nil {
			s.logf("storage: closing the ring after %v: %v", cause, err)
		}
	}
	if s.mounted {
		if err := unmount(s.cfg.MountPoint); err != nil {
			s.logf("storage: %v", err)
		}
		s.mounted = false
	}
	if cause != nil {
		s.setState(State{State: state, Device: s.dev, Error: cause.Error()})
	}
}

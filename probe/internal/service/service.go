package service

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/bpf"

	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/internal/capture"
	"github.com/presscap/presscap/probe/internal/clock"
	"github.com/presscap/presscap/probe/internal/export"
	"github.com/presscap/presscap/probe/internal/export/follow"
	"github.com/presscap/presscap/probe/internal/feedback"
	"github.com/presscap/presscap/probe/internal/filter"
	"github.com/presscap/presscap/probe/internal/status"
	"github.com/presscap/presscap/probe/internal/storage"
	"github.com/presscap/presscap/probe/internal/trigger"
	"github.com/presscap/presscap/probe/internal/upload"
	"github.com/presscap/presscap/probe/internal/window"
)

// Options are what the service needs besides the configuration.
type Options struct {
	Config   config.Config
	Logf     func(format string, args ...any)
	Feedback feedback.Feedback
	Clock    clock.Sync // nil: from Config.Clock
	// Time is the clock presses are received by and windows end on
	// (tests move it); nil: the real one.
	Time clock.Time
	// Identify overrides the evdev ioctls (tests feed FIFOs).
	Identify func(*os.File) (trigger.DeviceInfo, error)
	// ExportDelay is waited after a window's end before it is cut, so the
	// capture's last packets reach the ring. Default 1s.
	ExportDelay time.Duration
	// WriteWait bounds how much longer the export then waits, when the
	// capture has not yet handed every packet up to the window's end to the
	// ring (a disk that stalls: they wait in the capture's buffer). When it
	// runs out, the files are written anyway and the manifest and the log
	// say how far behind the capture was. Default 5s; negative: do not
	// wait (tests show what is missing then), only report.
	WriteWait time.Duration
	// WrapSink, if set, wraps the ring sink the capture writes into (tests
	// stall it like a slow disk).
	WrapSink func(capture.Sink) capture.Sink
	// OnExport, if set, is called after each window's files are written
	// (or failed), from the export goroutine.
	OnExport func(export.Manifest, error)
	// Host names files, manifests and the status page; empty: the
	// configured hostname, else the system's.
	Host string
	// FleetID is the probe's id (package identity): the uploader reads
	// its label from the server with it.
	FleetID string
	// OnPending, if set, is called after a window's pending record was
	// written (op "saved") or removed ("removed"), from the goroutine
	// that writes them.
	OnPending func(op string, id int, err error)
}

// Service is the running probe.
type Service struct {
	o       Options
	cfg     config.Config
	host    string
	logf    func(string, ...any)
	fb      feedback.Feedback
	clock   clock.Sync
	time    clock.Time // see Options.Time
	storage *storage.Manager
	watcher *trigger.Watcher
	capt    *capture.Capture
	specs   []export.Spec
	// profSpecs are the profiles' own exports, by profile.
	profSpecs map[string][]export.Spec
	started   time.Time
	bootID    string // see readBootID

	presses chan pressReq
	// pend keeps open windows on disk; persist feeds the one goroutine
	// that writes them, so the press path never waits for an fsync.
	pend      window.Store
	persist   chan persistOp
	ringReady chan struct{}
	// retry takes back, from the export goroutine, windows whose save
	// failed in a way that may mend (the disk): Run holds them again.
	retry chan retryReq
	// pendUnread: the pending directory could not be read at the start,
	// so the ids of the records in it are unknown: a record is then never
	// written over one this run did not write (pendOwn, persist goroutine).
	pendUnread bool
	pendOwn    map[int]bool
	// runCtx is Run's context, for the followers press starts.
	runCtx context.Context
	follow *follow.Followers

	mu        sync.Mutex
	windows   *window.Windows
	recent    []status.Press
	saving    int
	uploading bool
	uploader  *upload.Uploader // for the current storage root, or nil
	upRoot    string
}

// persistOp saves w's record, or removes record remove.
type persistOp struct {
	w      *window.Window
	remove int
}

// retryReq hands a window back to Run: failed says its save failed (it
// waits a backoff); otherwise the open ring was not the window's.
type retryReq struct {
	w      *window.Window
	failed bool
}

type pressReq struct {
	p     window.PressInfo
	reply chan status.Press
}

// New checks the configuration and builds the service.
func New(o Options) (*Service, error) {
	c := o.Config
	if err := c.Validate(); err != nil {
		return nil, err
	}
	tm := o.Time
	if tm == nil {
		tm = clock.Real{}
	}
	s := &Service{o: o, cfg: c, logf: o.Logf, fb: o.Feedback, clock: o.Clock, time: tm,
		presses: make(chan pressReq), started: tm.Now(), bootID: clock.BootID(),
		pend:    window.Store{Dir: filepath.Join(c.Storage.StateDir, window.PendingDirName)},
		persist: make(chan persistOp, 256), ringReady: make(chan struct{}, 1), retry: make(chan retryReq, 64), pendOwn: map[int]bool{}}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	if s.fb == nil {
		s.fb = feedback.Nop{}
	}
	if s.o.ExportDelay <= 0 {
		s.o.ExportDelay = time.Second
	}
	if s.o.WriteWait == 0 {
		s.o.WriteWait = 5 * time.Second
	}
	s.host = o.Host
	if s.host == "" {
		s.host = c.Hostname
	}
	if s.host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("hostname: %w", err)
		}
		s.host = h
	}
	if s.clock == nil {
		switch c.Clock.Sync {
		case config.SyncAdjtimex:
			s.clock = clock.Adjtimex{}
		case config.SyncAlways:
			s.clock = clock.Fixed(true)
		case config.SyncNever:
			s.clock = clock.Fixed(false)
		default:
			s.clock = &clock.GokrazySync{Timefile: c.Clock.NTPTimefile}
		}
	}
	s.windows = &window.Windows{Before: c.Trigger.Before.D(), After: c.Trigger.After.D(),
		MaxWindow: c.Trigger.MaxWindow.D(), Repeat: c.Trigger.Repeat}

	// Without record_own, what arrives for the bridge's own address (the
	// probe's traffic) is not recorded; what it sends the inbound-only
	// ports never see. The bridge exists: the network mode was applied.
	var own [6]byte
	if c.Network.Mode == config.ModeInline && !c.Network.RecordOwn {
		br := c.Network.Setup().BridgeName()
		if ifc, err := net.InterfaceByName(br); err != nil || len(ifc.HardwareAddr) != 6 {
			s.logf("network: bridge %s: %v: its own traffic is recorded", br, err)
		} else {
			copy(own[:], ifc.HardwareAddr)
		}
	}
	var links []string
	var clinks []capture.Link
	for i, l := range c.Links {
		links = append(links, l.LinkName())
		cl := capture.Link{Name: l.Interface, ID: uint16(i), Inbound: l.Inbound}
		if l.Inbound {
			cl.NotTo = own
		}
		clinks = append(clinks, cl)
	}
	// The ring rules run in the kernel; the largest slice they keep is the
	// ring's and the socket's snap length.
	var prog []bpf.Instruction
	maxSnap := filter.MaxSnap
	if len(c.Ring.Rules) > 0 || c.Ring.Snaplen != 0 {
		var err error
		if prog, maxSnap, err = capture.CompileRules(c.Ring.Rules, c.Ring.Snaplen); err != nil {
			return nil, fmt.Errorf("ring.rules: %w", err)
		}
	}
	st := c.Storage
	s.storage = storage.New(storage.Config{
		Finder:       storage.DiskFinder{SysBlock: st.SysBlock, DevDir: st.DevDir, Label: st.Label, FirstUSB: st.FirstUSB, Device: st.Device},
		MountPoint:   st.MountPoint,
		FSTypes:      st.FSTypes,
		FallbackPerm: st.FallbackPerm,
		PermDir:      st.PermDir,
		RingDir:      c.Ring.Dir,
		Dirs:         outputDirs(&c),
		RingSize:     int64(c.Ring.Size),
		MaxAge:       c.Ring.MaxAge.D(),
		Encrypt:      c.Ring.Encrypt,
		KeyDir:       st.StateDir,
		Retry:        st.Retry.D(),
		Links:        links,
		LinkType:     1, // Ethernet
		SnapLen:      uint32(maxSnap),
	}, s.logf)
	s.follow = follow.New(follow.Config{Rings: s.storage, Lock: &s.mu, Now: s.time.Now, Host: s.host,
		Dir: s.outputDir, Specs: s.specsFor, Persist: func(rec *window.Window) { s.persist <- persistOp{w: rec} }, Logf: s.logf})
	s.storage.OnChange = func(storage.State) {
		s.showState()
		select {
		case s.ringReady <- struct{}{}:
		default:
		}
	}

	s.storage.Busy = func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.saving > 0 || len(s.windows.Pending()) > 0
	}

	ccfg := capture.Config{Links: clinks, Program: prog, SnapLen: maxSnap, WaitForLinks: true, Logf: s.logf}
	var sink capture.Sink = s.storage
	if o.WrapSink != nil {
		sink = o.WrapSink(sink)
	}
	capt, err := capture.New(ccfg, sink)
	if err != nil {
		return nil, err
	}
	s.capt = capt

	s.watcher = &trigger.Watcher{Dir: c.Trigger.InputDir, Rescan: c.Trigger.Rescan.D(), Grab: c.Trigger.Grab,
		Matches: c.Trigger.Matches(), Identify: o.Identify, Logf: s.logf}

	var sides map[string]export.LinkSide
	for _, l := range c.Links {
		if l.Side != "" {
			if sides == nil {
				sides = map[string]export.LinkSide{}
			}
			sides[l.LinkName()] = export.LinkSide{Side: l.Side, Inbound: l.Inbound}
		}
	}
	s.specs = exportSpecs(c, c.Exports, sides)
	s.profSpecs = map[string][]export.Spec{}
	for _, p := range c.Trigger.Profiles {
		if s.windows.Spans == nil {
			s.windows.Spans = map[string]window.Span{}
		}
		b, a := c.Trigger.Span(p)
		s.windows.Spans[p.Name] = window.Span{Before: b, After: a}
		if len(p.Exports) > 0 {
			s.profSpecs[p.Name] = exportSpecs(c, p.Exports, sides)
		}
	}
	return s, nil
}

// exportSpecs are the exports es of configuration c; sides are its
// links' sides.
func exportSpecs(c config.Config, es []config.Export, sides map[string]export.LinkSide) []export.Spec {
	var specs []export.Spec
	for _, e := range es {
		sp := export.Spec{Name: e.Name, Filter: e.Filter, Link: e.Link, Format: e.Format, Sides: sides}
		if e.Link != "" {
			sp.Links = c.LinksOf(e.Link)
		}
		specs = append(specs, sp)
	}
	return specs
}

// specsFor returns the exports of w's profile: its own, else the
// top-level ones (also for a recovered window whose profile is gone).
func (s *Service) specsFor(w *window.Window) []export.Spec {
	if sp, ok := s.profSpecs[w.Profile]; ok {
		return sp
	}
	return s.specs
}

// Storage returns the storage manager (for status and tests).
func (s *Service) Storage() *storage.Manager { return s.storage }

// Run runs everything until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	goRun := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				s.logf("%s stopped: %v", name, err)
			}
		}()
	}
	s.logf("presscap: host %s, window %v before + %v after, %d export(s), repeat %s",
		s.host, s.cfg.Trigger.Before.D(), s.cfg.Trigger.After.D(), len(s.specs), s.cfg.Trigger.Repeat)
	s.showState()
	goRun("storage", s.storage.Run)
	goRun("capture", s.capt.Run)
	if g, ok := s.clock.(*clock.GokrazySync); ok {
		goRun("clock watch", func(ctx context.Context) error { return g.Watch(ctx, s.logf) })
	}
	goRun("upload", s.runUploads)
	keys := make(chan trigger.Press, 16)
	goRun("trigger", func(ctx context.Context) error { return s.watcher.Run(ctx, keys) })

	s.mu.Lock()
	s.runCtx = ctx
	s.mu.Unlock()
	persisted := make(chan struct{})
	go func() {
		defer close(persisted)
		for op := range s.persist {
			s.persistOne(op)
		}
	}()
	// Windows recovered after a restart whose end has passed, and windows
	// whose save failed on the disk, wait here for the ring; a failed one
	// not before notBefore (its backoff).
	held := window.NewHeld(s.recover())

	exports := make(chan *window.Window, 64)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for w := range exports {
			s.export(ctx, w)
		}
	}()

	// The LED follows states nobody announces (a link unplugged).
	refresh := time.NewTicker(2 * time.Second)
	defer refresh.Stop()
	for {
		var retryAt time.Time
		if len(held.Windows()) > 0 {
			if _, _, cur, err := s.storage.RingWithID(); err == nil {
				var ready []*window.Window
				ready, retryAt = held.Due(s.time.Now(), cur, func(w *window.Window) {
					s.logf("window #%d waits for the ring it was recorded on (%s): the open ring %s (%s) is another one, its packets are not there",
						w.ID, w.Ring, cur, s.storage.State().Device)
				})
				s.mu.Lock()
				s.saving += len(ready)
				s.mu.Unlock()
				for _, w := range ready {
					exports <- w
				}
			}
		}
		s.mu.Lock()
		now := s.time.Now()
		due := s.windows.Due(now.Add(-s.o.ExportDelay))
		s.saving += len(due)
		next, ok := s.windows.Next()
		s.mu.Unlock()
		for _, w := range due {
			exports <- w
		}
		s.showState()
		wait := time.Hour
		if ok {
			wait = max(next.Add(s.o.ExportDelay).Sub(now), 0)
		}
		if !retryAt.IsZero() {
			wait = max(min(wait, retryAt.Sub(now)), 0)
		}
		wake := s.time.After(wait)
		select {
		case <-ctx.Done():
			s.mu.Lock()
			open := s.windows.Pending()
			s.mu.Unlock()
			for _, w := range open {
				s.logf("window #%d is still open at the stop (%s .. %s): its pending record stays, it will be saved at the next start",
					w.ID, w.From.UTC().Format(time.RFC3339Nano), w.To.UTC().Format(time.RFC3339Nano))
			}
			for _, w := range held.Windows() {
				s.logf("window #%d was not saved before the stop (no ring yet, or waiting to try again): it will be saved at the next start", w.ID)
			}
			close(exports)
			wg.Wait()
			s.follow.Wait()
			close(s.persist)
			<-persisted
			return ctx.Err()
		case kp := <-keys:
			key := trigger.KeyName(kp.Key)
			s.press(window.PressInfo{Time: kp.Time, Source: kp.Device.Path, Key: key, Profile: s.cfg.Trigger.ProfileOfKey(kp.Key), Received: s.time.Now()})
		case req := <-s.presses:
			req.reply <- s.press(req.p)
		case <-wake:
		case <-refresh.C:
		case <-s.ringReady:
		case req := <-s.retry:
			if wait, n := held.Add(req.w, req.failed, s.time.Now()); req.failed {
				s.logf("window #%d: tried again in %v once the ring is there (failed %d times)", req.w.ID, wait, n)
			}
		}
	}
}

// Trigger presses profile's button (empty: the default profile) on behalf
// of source (the HTTP endpoint, `probe trigger`). It implements
// status.Source.
func (s *Service) Trigger(source, profile string) (status.Press, error) {
	if profile == "" {
		profile = s.cfg.Trigger.ProfileOfKey(0) // no key: the default
	} else if s.cfg.Trigger.ProfileIndex(profile) < 0 {
		return status.Press{}, fmt.Errorf("%w: %q", status.ErrNoProfile, profile)
	}
	now := s.time.Now()
	req := pressReq{p: window.PressInfo{Time: now, Source: source, Profile: profile, Received: now}, reply: make(chan status.Press, 1)}
	select {
	case s.presses <- req:
	case <-time.After(5 * time.Second):
		return status.Press{}, fmt.Errorf("the service is not taking presses")
	}
	return <-req.reply, nil
}

// press handles one press from the service goroutine.
func (s *Service) press(p window.PressInfo) status.Press {
	s.fb.Pressed(s.cfg.Trigger.ProfileIndex(p.Profile) + 1) // first: the customer must hear it within 100 ms
	p.Synced = s.clock.Synced()
	s.mu.Lock()
	d, w := s.windows.Press(p)
	sp := status.Press{Time: p.Time, Source: p.Source, Profile: p.Profile, Synced: p.Synced, Decision: d.String(), Window: w.ID}
	s.recent = append(s.recent, sp)
	if n := s.cfg.Status.RecentPresses; n > 0 && len(s.recent) > n {
		s.recent = s.recent[len(s.recent)-n:]
	}
	from, to, due := w.From, w.To, w.Due()
	if d != window.Ignored && w.Ring == "" {
		w.Ring = s.storage.RingID()
	}
	var rec *window.Window
	if d != window.Ignored {
		if bt, ok := s.time.BootTime(); ok && s.bootID != "" {
			w.BootID, w.EndBoot = s.bootID, bt+due.Sub(s.time.Now())
		}
		rec = w.Clone()
	}
	if d == window.Opened {
		s.startFollow(w)
	}
	s.mu.Unlock()
	if rec != nil {
		// After the ack, never before: the writer goroutine fsyncs it.
		s.persist <- persistOp{w: rec}
	}
	clk := "clock synced"
	if !p.Synced {
		clk = "clock NOT synced"
	}
	key := ""
	if p.Key != "" {
		key = " " + p.Key
	}
	if p.Profile != "" {
		key += " [" + p.Profile + "]"
	}
	switch d {
	case window.Opened:
		s.logf("press at %s from %s%s (%s): window #%d opened, %s .. %s",
			p.Time.UTC().Format(time.RFC3339Nano), p.Source, key, clk, w.ID, from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano))
	case window.Extended:
		s.logf("press at %s from %s%s (%s): extends window #%d to %s (%d presses)",
			p.Time.UTC().Format(time.RFC3339Nano), p.Source, key, clk, w.ID, to.UTC().Format(time.RFC3339Nano), len(w.Presses))
	case window.Ignored:
		s.logf("press at %s from %s%s (%s): ignored, window #%d is still open (trigger.repeat ignore)",
			p.Time.UTC().Format(time.RFC3339Nano), p.Source, key, clk, w.ID)
	}
	return sp
}

// outputDir is where a window's files go under root.
func (s *Service) outputDir(root string) string {
	return filepath.Join(root, s.outputRel())
}

// outputRel is outputDir relative to the storage root.
func (s *Service) outputRel() string {
	if s.cfg.Storage.Output == config.OutputRoot {
		return s.cfg.Storage.SaveDir
	}
	return s.cfg.Storage.QueueDir
}

// outputDirs are the directories under the storage root that the probe
// writes besides the ring: the save dir, the upload queue and a sent
// folder inside it.
func outputDirs(c *config.Config) []string {
	dirs := []string{c.Storage.SaveDir, c.Storage.QueueDir}
	if sent := c.Upload.SentDir; sent != "" && !filepath.IsAbs(sent) {
		dirs = append(dirs, filepath.Join(c.Storage.QueueDir, sent))
	}
	return dirs
}

// waitWritten waits (at most WriteWait) until the capture has handed every
// packet up to the window's end to the ring (export.WaitWritten).
func (s *Service) waitWritten(ctx context.Context, w *window.Window) *export.CaptureLag {
	// The window's end as the packets' clock reads it now: after an NTP
	// step backwards the packets since carry earlier times than the end,
	// which the ring will not reach before the step is caught up.
	// Round(0): compare the wall clocks, as the packets' timestamps do.
	end := w.To.Round(0)
	if now := time.Now().Round(0).Add(-s.o.ExportDelay); now.Before(end) {
		end = now
	}
	lag, waited := export.WaitWritten(ctx, s.capt, end, s.o.WriteWait)
	if waited > 100*time.Millisecond {
		s.logf("window #%d: waited %v for the capture to write the window's end into the ring", w.ID, waited.Round(time.Millisecond))
	}
	return lag
}

func (s *Service) export(ctx context.Context, w *window.Window) {
	start := time.Now()
	var man export.Manifest
	if ctx.Err() != nil {
		s.deferExport(w)
		return
	}
	var lag *export.CaptureLag
	// A window that ended before this run started is in the ring as far
	// as it will ever be: nothing to wait for.
	if !w.Recovered || !w.To.Before(s.started) {
		lag = s.waitWritten(ctx, w)
	}
	if ctx.Err() != nil {
		s.deferExport(w)
		return
	}
	ring, root, cur, err := s.storage.RingWithID()
	if err == nil && !w.FromRing(cur) {
		// A recovered window still open at the start, due while another
		// ring is open: Run holds it until its own ring is back.
		s.mu.Lock()
		s.saving--
		s.mu.Unlock()
		s.giveBack(ctx, w, false)
		return
	}
	dir := ""
	noRing := err != nil
	if err == nil {
		if ferr := ring.Flush(); ferr != nil {
			s.logf("window #%d: ring flush: %v", w.ID, ferr)
		}
		dir = s.outputDir(root)
		// The record is removed after the files are written: a power cut
		// in between brings the window back, already saved. Saving it again
		// would replace complete files with a copy marked recovered.
		if m := s.savedManifest(dir, w); w.Recovered && m != "" {
			s.follow.Drop(w.ID)
			s.logf("window #%d: already saved before the restart (%s exists): not saved again, pending record removed", w.ID, m)
			s.persist <- persistOp{remove: w.ID}
			s.mu.Lock()
			s.saving--
			for i := range s.recent {
				if s.recent[i].Window == w.ID {
					s.recent[i].Done, s.recent[i].Dir = true, dir
				}
			}
			s.mu.Unlock()
			s.showState()
			return
		}
		// Under the lock: the window's follower may still be cloning w
		// for its pending record until cut takes it over.
		opened := s.storage.Opened()
		s.mu.Lock()
		w.Recording = opened
		s.mu.Unlock()
		// Made here, one checked directory at a time: the disk is the
		// customer's (see checkDir).
		if err = storage.CheckDir(root, s.outputRel(), true); err == nil {
			man, err = s.follow.Cut(ctx, ring, cur, w, dir, lag)
		}
		if err != nil && ctx.Err() != nil {
			s.deferExport(w)
			return
		}
	}
	var files []string
	if err != nil {
		if noRing || export.Retryable(err) {
			// The ring may still hold the window on a disk that comes
			// back or gets room: this run tries again after a while, and
			// the record keeps it for the next start.
			s.logf("window #%d: NOT saved: %v; its pending record stays, it is tried again once the ring is there", w.ID, err)
			defer s.giveBack(ctx, w, true)
		} else {
			// Filters, links and the ring's content come out the same on
			// a retry: do not repeat the failure at every start.
			s.logf("window #%d: NOT saved: %v; not retried at the next start (the same export would fail again), pending record removed", w.ID, err)
			s.persist <- persistOp{remove: w.ID}
		}
		s.fb.Fault(feedback.FaultNotSaved)
	} else {
		s.persist <- persistOp{remove: w.ID}
		s.cleanPartials(dir)
		var total uint64
		for _, f := range man.Files {
			files = append(files, f.File)
			total += f.Packets
		}
		trunc := ""
		if man.Truncated {
			trunc = fmt.Sprintf("; TRUNCATED: %s of the window is missing (%s; the ring reached back to %s)",
				man.Missing, man.ReasonsText(), man.RingOldest.Format(time.RFC3339Nano))
		}
		if lag != nil {
			// The lag's one log line: the save that follows it says where.
			trunc += fmt.Sprintf("; the capture had not written the window's end into the ring after waiting %s (disk stalled?): packets after %s may be missing, the end may be short by up to %s (capture not caught up)",
				lag.Waited, lag.WrittenUntil.Format(time.RFC3339Nano), lag.Behind)
		}
		if w.Recovered {
			trunc += fmt.Sprintf("; recovered after a restart: packets from the stop until the service started at %s are missing",
				w.Restarted.UTC().Format(time.RFC3339Nano))
		}
		s.logf("window #%d saved in %v to %s: %d files, %d packets, %d drops in the window%s",
			w.ID, time.Since(start).Round(time.Millisecond), dir, len(files), total, man.Drops, trunc)
		s.fb.Saved()
		s.mu.Lock()
		u := s.uploader
		s.mu.Unlock()
		if u != nil && s.cfg.Upload.AfterCapture && s.cfg.Storage.Output == config.OutputQueue {
			u.Kick()
		}
	}
	s.mu.Lock()
	s.saving--
	for i := range s.recent {
		if s.recent[i].Window == w.ID {
			s.recent[i].Done = true
			s.recent[i].Files = files
			s.recent[i].Dir = dir
			s.recent[i].Truncated, s.recent[i].Missing, s.recent[i].Reason = man.Truncated, man.Missing, man.Reason
			if err != nil {
				s.recent[i].Error = err.Error()
			}
		}
	}
	s.mu.Unlock()
	s.showState()
	if s.o.OnExport != nil {
		s.o.OnExport(man, err)
	}
}

// startFollow starts w's follower (package follow) once Run runs. Called
// with s.mu held.
func (s *Service) startFollow(w *window.Window) {
	if s.runCtx != nil {
		s.follow.Start(s.runCtx, w)
	}
}

// cleanPartials removes the partial files in dir that no window will
// continue (export.CleanPartials).
func (s *Service) cleanPartials(dir string) {
	if removed := export.CleanPartials(dir, s.partialBases); len(removed) > 0 {
		s.logf("removed %d partial files no window continues from %s: %s", len(removed), dir, strings.Join(removed, ", "))
	}
}

// partialBases are the file bases of the windows whose partial files are
// wanted: those that have a follower, are open or have a record; false if
// the records cannot all be read.
func (s *Service) partialBases() ([]string, bool) {
	s.mu.Lock()
	unread := s.pendUnread
	bases := s.follow.Bases()
	for _, w := range s.windows.Pending() {
		bases = append(bases, export.FileBase(s.host, &w))
	}
	s.mu.Unlock()
	if unread {
		return nil, false
	}
	ws, err := s.pend.Windows()
	if err != nil {
		return nil, false
	}
	for _, w := range ws {
		bases = append(bases, export.FileBase(s.host, w))
	}
	return bases, true
}

// savedManifest returns the path of w's manifest if it is already in dir
// or, for the upload queue, in the upload's sent folder; "" if not.
func (s *Service) savedManifest(dir string, w *window.Window) string {
	dirs := []string{dir}
	if sent := s.cfg.Upload.SentDir; sent != "" && s.cfg.Storage.Output == config.OutputQueue {
		if !filepath.IsAbs(sent) {
			sent = filepath.Join(dir, sent)
		}
		dirs = append(dirs, sent)
	}
	return export.SavedManifest(s.host, w, dirs...)
}

// giveBack hands w back to Run to hold (see retryReq).
func (s *Service) giveBack(ctx context.Context, w *window.Window, failed bool) {
	select {
	case s.retry <- retryReq{w, failed}:
	case <-ctx.Done():
	}
}

// deferExport leaves a window queued at shutdown for the next start: its
// pending record stays.
func (s *Service) deferExport(w *window.Window) {
	s.logf("window #%d: the service is stopping before its files were written: its pending record stays, it will be saved at the next start", w.ID)
	s.mu.Lock()
	s.saving--
	s.mu.Unlock()
}

// persistOne writes or removes one pending record.
func (s *Service) persistOne(op persistOp) {
	var err error
	opName, id := "removed", op.remove
	if op.w != nil {
		opName, id = "saved", op.w.ID
		s.mu.Lock()
		unread := s.pendUnread
		s.mu.Unlock()
		if unread && !s.pendOwn[id] && s.pend.Exists(id) {
			err = fmt.Errorf("pending record %s is there, from before the start, when the records could not be read: not overwritten", s.pend.Path(id))
		} else if err = s.pend.Save(*op.w); err == nil {
			s.pendOwn[id] = true
		}
		if err != nil {
			s.logf("window #%d: %v (a restart before its files are written loses the press)", id, err)
		}
	} else if err = s.pend.Remove(id); err != nil {
		s.logf("window #%d: %v (the next start may save the window again)", id, err)
	}
	if s.o.OnPending != nil {
		s.o.OnPending(opName, id, err)
	}
}

// recover reads the pending records left by an earlier run. Windows still
// open (by a synced clock) go back among the pending ones and continue;
// the others are returned, to be saved once the ring is there. Without a
// synced clock (no RTC on the Pi) an end cannot be judged: they are saved
// at once rather than waiting on a clock that may be years off.
func (s *Service) recover() []*window.Window {
	ws, bad, maxID, err := s.pend.Load()
	for _, err := range bad {
		s.logf("%v", err)
	}
	if err != nil {
		s.logf("RECOVERY FAILED: %v: windows pressed before the restart are not saved in this run (their records stay for the next start); a new record never replaces one left there", err)
		s.fb.Fault(feedback.FaultRecovery)
	}
	restart := window.Restart{Now: s.time.Now(), Synced: s.clock.Synced(), BootID: s.bootID, BootTime: s.time.BootTime}
	var held []*window.Window
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pendUnread = err != nil
	if err != nil {
		s.windows.Taken = s.pend.Exists
	}
	s.windows.Reserve(maxID)
	for _, w := range ws {
		// This start, not an earlier one: the manifest says where the
		// last gap ends.
		w.Recovered, w.Restarted = true, s.started.UTC()
		first := w.First()
		s.recent = append(s.recent, status.Press{Time: first.Time, Source: first.Source, Synced: w.Synced(),
			Decision: "recovered", Window: w.ID})
		span := w.From.UTC().Format(time.RFC3339Nano) + " .. " + w.To.UTC().Format(time.RFC3339Nano)
		open, sameBoot, left := s.windows.Reopen(w, restart)
		switch {
		case open && sameBoot:
			s.startFollow(w)
			s.logf("window #%d recovered after a restart in the same boot (%s, %d presses): still open for %v, continues; packets from the stop until now are missing",
				w.ID, span, len(w.Presses), left.Round(time.Millisecond))
		case open:
			s.startFollow(w)
			s.logf("window #%d recovered after a restart (%s, %d presses): still open, continues; packets from the stop until now are missing",
				w.ID, span, len(w.Presses))
		case sameBoot:
			held = append(held, w)
			s.logf("window #%d recovered after a restart in the same boot (%s, %d presses): ended, saved as soon as the ring is there; packets from the stop until now are missing",
				w.ID, span, len(w.Presses))
		default:
			held = append(held, w)
			s.logf("window #%d recovered after a restart (%s, %d presses): saved as soon as the ring is there; packets from the stop until now are missing",
				w.ID, span, len(w.Presses))
		}
	}
	return held
}

// showState puts the most important state on the LED.
func (s *Service) showState() {
	st := s.storage.State()
	s.mu.Lock()
	busy, uploading := s.saving > 0, s.uploading
	s.mu.Unlock()
	switch {
	case st.State == storage.DiskMissing || st.State == storage.DiskFailed || st.State == storage.DiskReadOnly:
		s.fb.State("no-disk")
	case st.State == storage.DiskFull:
		s.fb.State("disk-full")
	case s.missingLink() != "":
		s.fb.State("no-link")
	case busy:
		s.fb.State("saving")
	case uploading:
		s.fb.State("uploading")
	default:
		s.fb.State("recording")
	}
}

// Snapshot implements status.Source.
func (s *Service) Snapshot() status.Snapshot {
	st := s.storage.State()
	snap := status.Snapshot{Host: s.host, ID: s.o.FleetID, Now: time.Now(), Started: s.started, ClockSynced: s.clock.Synced(),
		Storage: status.Storage{State: st.State, Device: st.Device, Root: st.Root, Error: st.Error, Replaced: st.Replaced, Since: st.Since}}
	if ring, _, err := s.storage.Ring(); err == nil {
		if info, err := ring.Info(); err == nil {
			r := &status.Ring{Dir: info.Dir, Size: info.Size, Used: info.Used, Packets: info.Packets, Bytes: info.Bytes, Drops: info.Drops}
			if info.Oldest != 0 {
				r.Oldest, r.Newest = time.Unix(0, info.Oldest), time.Unix(0, info.Newest)
				r.Span = time.Duration(info.Newest - info.Oldest).Round(time.Millisecond).String()
			}
			snap.Ring = r
		}
	}
	if p, err := status.ReadProcess(); err == nil {
		snap.Process = &p
	}
	for _, l := range s.capt.Stats() {
		snap.Links = append(snap.Links, status.Link{Name: l.Name, Seen: l.Seen, Written: l.Written, Drops: l.Dropped()})
	}
	for _, d := range s.watcher.Devices() {
		snap.Devices = append(snap.Devices, status.Device{Path: d.Path, Name: d.Name,
			Vendor: fmt.Sprintf("%04x", d.Vendor), Product: fmt.Sprintf("%04x", d.Product)})
	}
	if st.State != storage.DiskRecording {
		snap.Faults = append(snap.Faults, "disk: "+st.State+" "+st.Error)
	}
	if f := s.missingLink(); f != "" {
		snap.Faults = append(snap.Faults, f)
	}
	s.mu.Lock()
	for _, w := range s.windows.Pending() {
		snap.Pending = append(snap.Pending, status.Window{ID: w.ID, From: w.From, To: w.To, Presses: len(w.Presses)})
	}
	snap.Presses = append(snap.Presses, s.recent...)
	u := s.uploader
	s.mu.Unlock()
	if u != nil {
		us := u.Status()
		snap.Upload = &us
	}
	return snap
}

// runUploads runs an uploader for the upload queue of the current storage
// root, replacing it when the root changes (disk plugged, fallback).
func (s *Service) runUploads(ctx context.Context) error {
	var cancel context.CancelFunc
	var done chan struct{}
	stop := func() {
		if cancel != nil {
			cancel()
			<-done
			cancel = nil
		}
	}
	defer stop()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastErr := ""
	for {
		root := s.storage.State().Root
		s.mu.Lock()
		cur := s.upRoot
		s.mu.Unlock()
		if root != "" && root != cur {
			stop()
			u, err := s.newUploader(filepath.Join(root, s.cfg.Storage.QueueDir))
			if err != nil {
				// Tried again every second: a process out of descriptors (a
				// flood of connections) or a state dir fixed later heals.
				if err.Error() != lastErr {
					s.logf("upload: %v (trying again every second)", err)
					lastErr = err.Error()
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-t.C:
				}
				continue
			}
			lastErr = ""
			s.mu.Lock()
			s.uploader, s.upRoot = u, root
			s.mu.Unlock()
			uctx, c := context.WithCancel(ctx)
			cancel, done = c, make(chan struct{})
			go func() {
				defer close(done)
				u.Run(uctx)
			}()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (s *Service) newUploader(queue string) (*upload.Uploader, error) {
	if err := os.MkdirAll(s.cfg.Storage.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("storage.state_dir: %w", err)
	}
	u, err := upload.New(s.cfg.Upload, queue, s.cfg.Storage.StateDir, nil, s.clock, s.logf)
	if err != nil {
		return nil, err
	}
	if s.o.FleetID != "" {
		u.SetID(s.o.FleetID)
	}
	u.SetHosts(upload.FileHosts(s.host, s.cfg.Hostname, s.o.FleetID)...)
	u.OnEvent(func(e upload.Event) {
		s.mu.Lock()
		s.uploading = e.Kind == upload.Uploading
		s.mu.Unlock()
		s.showState()
		switch e.Kind {
		case upload.Uploaded:
			s.fb.Uploaded()
		case upload.Failed:
			s.fb.Fault(feedback.FaultUpload)
		}
	})
	return u, nil
}

// LinkChanged records that the network port went down (up false) or came
// back at at, as a gap of the ring links captured on it (see
// storage.Manager.LinkChanged): the manifest of a window then says the
// link had nothing to capture. It is called for each change ports.Watch
// reports.
func (s *Service) LinkChanged(port string, up bool, at time.Time) {
	for _, l := range s.cfg.Links {
		if l.Interface == port {
			s.storage.LinkChanged(l.LinkName(), up, at)
		}
	}
}

// missingLink says what is wrong with the first capture interface that
// does not exist or is not up, or of a network port (a side of the
// bridge, a mirror port) that has no carrier, or "". It runs for every
// status request, so it asks with an ioctl, and a process out of
// descriptors (a flood of connections) does not make a link look missing.
func (s *Service) missingLink() string {
	for _, l := range s.cfg.Links {
		if l.Side != "" {
			present, carrier, err := capture.InterfaceCarrier(l.Interface)
			if err == nil && present && !carrier {
				return "port " + l.Interface + " (side " + l.Side + ") has no link: the cable or the device on that side"
			}
		}
		present, up, err := capture.InterfaceState(l.Interface)
		if err == nil && (!present || !up) {
			return "link " + l.Interface + " is missing or down"
		}
	}
	return ""
}

package service

import (
	"context"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// A window's files are written from the press on, not after its end: the
// part of the window already in the ring ([press − before, press)) is read
// at once, before a fast line makes the ring overwrite it, and the rest is
// followed as the capture writes it. Each window has its own follower, so a
// long window never holds up another's save.
const (
	// followStep is how often a follower reads what the ring gained.
	followStep = 250 * time.Millisecond
	// followSync is how often it makes its files durable and records how
	// far they go in the pending record, for a restart to continue there.
	followSync = 2 * time.Second
)

// follower is the goroutine writing one window's files while it is open.
type follower struct {
	stop chan struct{}
	done chan struct{}
	// Set by the goroutine, read after done: the files so far (nil if
	// none could be opened) and the ring they were read from.
	c    *cut
	ring string
	// base is the window's file base: its partial files are not stale
	// (see cleanPartials).
	base string
}

// startFollow starts w's follower. Called with s.mu held.
func (s *Service) startFollow(w *Window) {
	if s.runCtx == nil || s.follows[w.ID] != nil {
		return
	}
	f := &follower{stop: make(chan struct{}), done: make(chan struct{}), base: FileBase(s.host, w)}
	s.follows[w.ID] = f
	s.fwg.Add(1)
	go func() {
		defer s.fwg.Done()
		s.follow(s.runCtx, w, f)
	}()
}

// takeFollower stops w's follower, if it has one, and returns what it
// wrote.
func (s *Service) takeFollower(id int) (*cut, string) {
	s.mu.Lock()
	f := s.follows[id]
	delete(s.follows, id)
	s.mu.Unlock()
	if f == nil {
		return nil, ""
	}
	close(f.stop)
	<-f.done
	return f.c, f.ring
}

// follow writes w's files as the ring records the window, until stopped.
// At shutdown it makes them durable and leaves them for the next start.
func (s *Service) follow(ctx context.Context, w *Window, f *follower) {
	defer close(f.done)
	// The ring's writer comes first: this thread's disk I/O (reading the
	// ring, writing the files) waits while the disk is busy with it.
	runtime.LockOSThread() // the thread ends with the goroutine, priority and all
	if err := ioprioIdle(); err != nil {
		s.logf("capture #%d: could not lower the save's disk priority: %v", w.ID, err)
	}
	t := time.NewTicker(followStep)
	defer t.Stop()
	var synced time.Time
	failed := false
	for {
		if !failed {
			failed = !s.followStep(ctx, w, f, &synced)
		}
		select {
		case <-f.stop:
			return
		case <-ctx.Done():
			if f.c != nil {
				s.saveProgress(w, f.c)
				f.c.close()
			}
			return
		case <-t.C:
		}
	}
}

// followStep reads what the ring gained for w; false means following
// stopped (the files are left to the save at the window's end).
func (s *Service) followStep(ctx context.Context, w *Window, f *follower, synced *time.Time) bool {
	ring, root, cur, err := s.storage.RingWithID()
	if err != nil || !s.fromRing(w, cur) {
		return true // no ring (yet), or not this window's: try again
	}
	if f.c == nil {
		// A copy: presses extend w meanwhile; the save at the end hands
		// the cut the window as it ended.
		s.mu.Lock()
		wc := w.record()
		s.mu.Unlock()
		wc.recording = s.storage.Opened()
		dir := s.outputDir(root)
		prog := wc.progress
		if prog != nil && (prog.Ring != cur || prog.Dir != dir) {
			prog = nil
		}
		c, err := openCut(ring, wc, s.specsFor(wc), s.host, dir, prog)
		if err != nil && prog != nil {
			s.logf("capture #%d: cannot continue the files written before the restart (%v): cutting the window again", w.ID, err)
			c, err = openCut(ring, wc, s.specsFor(wc), s.host, dir, nil)
		}
		if err != nil {
			s.logf("capture #%d: cannot write its files during the window (%v): they are cut at its end", w.ID, err)
			return false
		}
		c.prog.Ring = cur
		f.c, f.ring = c, cur
	} else if cur != f.ring {
		return false // the ring changed: the save at the end decides
	}
	s.mu.Lock()
	to := w.To
	s.mu.Unlock()
	if !time.Now().Before(to) {
		// Past the window's end a step would pass blocks whose later
		// packets a press still in flight (its key time before the end)
		// could add to the window: the save at the end reads on from here
		// with the end as it is then.
		return true
	}
	if err := f.c.step(ctx, ring, to, false); err != nil {
		if ctx.Err() != nil {
			// A stop: what is written stays for the next start, which
			// continues where the step stopped.
			s.saveProgress(w, f.c)
			f.c.close()
		} else {
			s.logf("capture #%d: reading the window during it: %v; it is cut at its end", w.ID, err)
			f.c.abort()
		}
		f.c = nil
		return false
	}
	if time.Since(*synced) >= followSync {
		*synced = time.Now()
		s.saveProgress(w, f.c)
	}
	return true
}

// saveProgress makes c's files durable and records how far they go.
func (s *Service) saveProgress(w *Window, c *cut) {
	p, err := c.sync()
	if err != nil {
		s.logf("capture #%d: making its files durable: %v", w.ID, err)
		return
	}
	s.mu.Lock()
	w.progress = &p
	rec := w.record()
	s.mu.Unlock()
	s.persist <- persistOp{w: rec}
}

// record copies w for its pending record. Called with s.mu held.
func (w *Window) record() *Window {
	cp := *w
	cp.Presses = append([]PressInfo(nil), w.Presses...)
	return &cp
}

// ioprioIdle puts the calling thread's disk I/O in the idle class.
func ioprioIdle() error {
	const whoProcess, classIdle, classShift = 1, 3, 13
	_, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, whoProcess, 0, classIdle<<classShift)
	if errno != 0 {
		return errno
	}
	return nil
}

package service

import (
	"context"
	"runtime"
	"time"

	"github.com/presscap/presscap/probe/internal/export"
	"github.com/presscap/presscap/probe/internal/window"
)

// follower is the goroutine writing one window's files while it is open.
type follower struct {
	stop chan struct{}
	done chan struct{}
	// Set by the goroutine, read after done: the files so far (nil if
	// none could be opened) and the ring they were read from.
	c    *export.Files
	ring string
	// base is the window's file base: its partial files are not stale
	// (see cleanPartials).
	base string
}

// startFollow starts w's follower. Called with s.mu held.
func (s *Service) startFollow(w *window.Window) {
	if s.runCtx == nil || s.follows[w.ID] != nil {
		return
	}
	f := &follower{stop: make(chan struct{}), done: make(chan struct{}), base: export.FileBase(s.host, w)}
	s.follows[w.ID] = f
	s.fwg.Add(1)
	go func() {
		defer s.fwg.Done()
		s.follow(s.runCtx, w, f)
	}()
}

// takeFollower stops w's follower, if it has one, and returns what it
// wrote.
func (s *Service) takeFollower(id int) (*export.Files, string) {
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
func (s *Service) follow(ctx context.Context, w *window.Window, f *follower) {
	defer close(f.done)
	// The ring's writer comes first: this thread's disk I/O (reading the
	// ring, writing the files) waits while the disk is busy with it.
	runtime.LockOSThread() // the thread ends with the goroutine, priority and all
	if err := export.IOPrioIdle(); err != nil {
		s.logf("window #%d: could not lower the save's disk priority: %v", w.ID, err)
	}
	t := time.NewTicker(export.FollowStep)
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
				f.c.Close()
			}
			return
		case <-t.C:
		}
	}
}

// followStep reads what the ring gained for w; false means following
// stopped (the files are left to the save at the window's end).
func (s *Service) followStep(ctx context.Context, w *window.Window, f *follower, synced *time.Time) bool {
	ring, root, cur, err := s.storage.RingWithID()
	if err != nil || !fromRing(w, cur) {
		return true // no ring (yet), or not this window's: try again
	}
	if f.c == nil {
		// A copy: presses extend w meanwhile; the save at the end hands
		// the cut the window as it ended.
		s.mu.Lock()
		wc := w.Clone()
		s.mu.Unlock()
		wc.Recording = s.storage.Opened()
		dir := s.outputDir(root)
		prog := wc.Progress
		if prog != nil && (prog.Ring != cur || prog.Dir != dir) {
			prog = nil
		}
		c, err := export.Open(ring, wc, s.specsFor(wc), s.host, dir, prog)
		if err != nil && prog != nil {
			s.logf("window #%d: cannot continue the files written before the restart (%v): cutting the window again", w.ID, err)
			c, err = export.Open(ring, wc, s.specsFor(wc), s.host, dir, nil)
		}
		if err != nil {
			s.logf("window #%d: cannot write its files during the window (%v): they are cut at its end", w.ID, err)
			return false
		}
		c.SetRing(cur)
		f.c, f.ring = c, cur
	} else if cur != f.ring {
		return false // the ring changed: the save at the end decides
	}
	s.mu.Lock()
	to := w.To
	s.mu.Unlock()
	if !s.time.Now().Before(to) {
		// Past the window's end a step would pass blocks whose later
		// packets a press still in flight (its key time before the end)
		// could add to the window: the save at the end reads on from here
		// with the end as it is then.
		return true
	}
	if err := f.c.Step(ctx, ring, to, false); err != nil {
		if ctx.Err() != nil {
			// A stop: what is written stays for the next start, which
			// continues where the step stopped.
			s.saveProgress(w, f.c)
			f.c.Close()
		} else {
			s.logf("window #%d: reading the window during it: %v; it is cut at its end", w.ID, err)
			f.c.Abort()
		}
		f.c = nil
		return false
	}
	if time.Since(*synced) >= export.FollowSync {
		*synced = time.Now()
		s.saveProgress(w, f.c)
	}
	return true
}

// saveProgress makes c's files durable and records how far they go.
func (s *Service) saveProgress(w *window.Window, c *export.Files) {
	p, err := c.Sync()
	if err != nil {
		s.logf("window #%d: making its files durable: %v", w.ID, err)
		return
	}
	s.mu.Lock()
	w.Progress = &p
	rec := w.Clone()
	s.mu.Unlock()
	s.persist <- persistOp{w: rec}
}

// Package follow writes a window's files while the window is open, one
// follower goroutine a window, and completes them at its end: the part of
// the window already in the ring is read at the press, before a fast line
// makes the ring overwrite it, and the rest as the capture writes it, so
// the writer may overtake a window only while it is being followed.
package follow

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/presscap/presscap/probe/internal/export"
	"github.com/presscap/presscap/probe/internal/window"
	"github.com/presscap/presscap/ringfs"
)

// Rings is the ring open now (storage.Manager).
type Rings interface {
	// RingWithID returns the open ring, the storage root it is under and
	// its id; an error when none is open.
	RingWithID() (ring *ringfs.Ring, root, id string, err error)
	// Opened is when the open ring began recording in this run.
	Opened() time.Time
}

// Config is what the followers need from the service.
type Config struct {
	Rings Rings
	// Lock guards the fields of a window that presses change (To,
	// Presses, Progress): the service's lock over its windows.
	Lock sync.Locker
	// Now is the clock windows end on.
	Now  func() time.Time
	Host string
	// Dir is where a window's files go under the storage root root.
	Dir func(root string) string
	// Specs are the exports of w (its profile's).
	Specs func(w *window.Window) []export.Spec
	// Persist writes rec, a copy of a window with its Progress, as the
	// window's pending record, for a restart to continue the files.
	Persist func(rec *window.Window)
	Logf    func(format string, args ...any)
}

// Followers are the followers of the open windows. Lock may be held when
// calling Start and Bases, not when calling the other methods.
type Followers struct {
	cfg Config
	mu  sync.Mutex
	m   map[int]*follower // by window id
	wg  sync.WaitGroup
}

// follower is the goroutine writing one window's files while it is open.
type follower struct {
	stop chan struct{}
	done chan struct{}
	// Set by the goroutine, read after done: the files so far (nil if
	// none could be opened) and the ring they were read from.
	c    *export.Files
	ring string
	// base is the window's file base: its partial files are not stale
	// (see Bases).
	base string
}

// New returns the followers of cfg, none running.
func New(cfg Config) *Followers {
	return &Followers{cfg: cfg, m: map[int]*follower{}}
}

// Start starts w's follower, unless it has one, until ctx is done (then
// the files written are made durable and left for the next start) or the
// window is saved.
func (fs *Followers) Start(ctx context.Context, w *window.Window) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.m[w.ID] != nil {
		return
	}
	f := &follower{stop: make(chan struct{}), done: make(chan struct{}), base: export.FileBase(fs.cfg.Host, w)}
	fs.m[w.ID] = f
	fs.wg.Add(1)
	go func() {
		defer fs.wg.Done()
		fs.follow(ctx, w, f)
	}()
}

// Bases are the file bases of the windows that have a follower: their
// partial files are wanted. A follower is counted from before it makes
// its first file.
func (fs *Followers) Bases() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var bases []string
	for _, f := range fs.m {
		bases = append(bases, f.base)
	}
	return bases
}

// Wait waits for the followers to end (after their context is done).
func (fs *Followers) Wait() { fs.wg.Wait() }

// take stops w's follower, if it has one, and returns what it wrote.
func (fs *Followers) take(id int) (*export.Files, string) {
	fs.mu.Lock()
	f := fs.m[id]
	delete(fs.m, id)
	fs.mu.Unlock()
	if f == nil {
		return nil, ""
	}
	close(f.stop)
	<-f.done
	return f.c, f.ring
}

// Drop stops window id's follower, if it has one, and removes the files
// it wrote (the window is saved already).
func (fs *Followers) Drop(id int) {
	if c, _ := fs.take(id); c != nil {
		c.Abort()
	}
}

// follow writes w's files as the ring records the window, until stopped.
// At shutdown it makes them durable and leaves them for the next start.
func (fs *Followers) follow(ctx context.Context, w *window.Window, f *follower) {
	defer close(f.done)
	// The ring's writer comes first: this thread's disk I/O (reading the
	// ring, writing the files) waits while the disk is busy with it.
	runtime.LockOSThread() // the thread ends with the goroutine, priority and all
	if err := export.IOPrioIdle(); err != nil {
		fs.cfg.Logf("window #%d: could not lower the save's disk priority: %v", w.ID, err)
	}
	t := time.NewTicker(export.FollowStep)
	defer t.Stop()
	var synced time.Time
	failed := false
	for {
		if !failed {
			failed = !fs.step(ctx, w, f, &synced)
		}
		select {
		case <-f.stop:
			return
		case <-ctx.Done():
			if f.c != nil {
				fs.saveProgress(w, f.c)
				f.c.Close()
			}
			return
		case <-t.C:
		}
	}
}

// step reads what the ring gained for w; false means following stopped
// (the files are left to the save at the window's end).
func (fs *Followers) step(ctx context.Context, w *window.Window, f *follower, synced *time.Time) bool {
	ring, root, cur, err := fs.cfg.Rings.RingWithID()
	if err != nil || !w.FromRing(cur) {
		return true // no ring (yet), or not this window's: try again
	}
	if f.c == nil {
		// A copy: presses extend w meanwhile; the save at the end hands
		// the cut the window as it ended.
		fs.cfg.Lock.Lock()
		wc := w.Clone()
		fs.cfg.Lock.Unlock()
		wc.Recording = fs.cfg.Rings.Opened()
		dir := fs.cfg.Dir(root)
		prog := wc.Progress
		if prog != nil && (prog.Ring != cur || prog.Dir != dir) {
			prog = nil
		}
		specs := fs.cfg.Specs(wc)
		c, err := export.Open(ring, wc, specs, fs.cfg.Host, dir, prog)
		if err != nil && prog != nil {
			fs.cfg.Logf("window #%d: cannot continue the files written before the restart (%v): cutting the window again", w.ID, err)
			c, err = export.Open(ring, wc, specs, fs.cfg.Host, dir, nil)
		}
		if err != nil {
			fs.cfg.Logf("window #%d: cannot write its files during the window (%v): they are cut at its end", w.ID, err)
			return false
		}
		c.SetRing(cur)
		f.c, f.ring = c, cur
	} else if cur != f.ring {
		return false // the ring changed: the save at the end decides
	}
	fs.cfg.Lock.Lock()
	to := w.To
	fs.cfg.Lock.Unlock()
	if !fs.cfg.Now().Before(to) {
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
			fs.saveProgress(w, f.c)
			f.c.Close()
		} else {
			fs.cfg.Logf("window #%d: reading the window during it: %v; it is cut at its end", w.ID, err)
			f.c.Abort()
		}
		f.c = nil
		return false
	}
	if time.Since(*synced) >= export.FollowSync {
		*synced = time.Now()
		fs.saveProgress(w, f.c)
	}
	return true
}

// saveProgress makes c's files durable and records how far they go.
func (fs *Followers) saveProgress(w *window.Window, c *export.Files) {
	p, err := c.Sync()
	if err != nil {
		fs.cfg.Logf("window #%d: making its files durable: %v", w.ID, err)
		return
	}
	fs.cfg.Lock.Lock()
	w.Progress = &p
	rec := w.Clone()
	fs.cfg.Lock.Unlock()
	fs.cfg.Persist(rec)
}

// Cut writes w's files into dir from ring (id cur), at the window's end:
// it completes what w's follower wrote during the window, or continues
// the files a run before the restart made durable, or else cuts the window
// out of the ring now. Stopped by ctx, the files written stay for the next
// start.
func (fs *Followers) Cut(ctx context.Context, ring *ringfs.Ring, cur string, w *window.Window, dir string, lag *export.CaptureLag) (export.Manifest, error) {
	c, from := fs.take(w.ID)
	if c != nil && (from != cur || c.Dir() != dir) {
		c.Abort() // another ring or root: those files do not continue here
		c = nil
	}
	if p := w.Progress; c == nil && p != nil && p.Ring == cur && p.Dir == dir {
		var err error
		if c, err = export.Open(ring, w, fs.cfg.Specs(w), fs.cfg.Host, dir, p); err != nil {
			fs.cfg.Logf("window #%d: cannot continue the files written before the restart (%v): cutting the window again", w.ID, err)
			c = nil
		} else {
			fs.cfg.Logf("window #%d: continuing the files written before the restart", w.ID)
		}
	}
	if c == nil {
		return export.Cut(ctx, ring, w, fs.cfg.Specs(w), fs.cfg.Host, dir, lag)
	}
	c.SetWindow(w) // as it ended, with every press
	if err := c.Step(ctx, ring, w.To, true); err != nil {
		if ctx.Err() != nil {
			fs.saveProgress(w, c) // the next start continues them
			c.Close()
		} else {
			c.Abort()
			w.Progress = nil
		}
		return export.Manifest{}, err
	}
	man, err := c.Finish(lag)
	if err != nil {
		w.Progress = nil // finish removed the files
	}
	return man, err
}

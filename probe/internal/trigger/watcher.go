package trigger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Press is one key-down on an accepted device.
type Press struct {
	Time   time.Time // the event's timestamp (or the read time, if implausible)
	Key    uint16
	Device DeviceInfo
}

// Watcher finds input devices in Dir, follows them being plugged and
// pulled, and reports key presses. Its zero value is not usable: set Dir
// and Matches.
type Watcher struct {
	Dir     string        // e.g. /dev/input
	Rescan  time.Duration // Dir is listed this often besides inotify; 0 = 5s
	Grab    bool          // grab accepted devices
	Matches []Match       // a device is accepted if one matches

	// Identify returns who an opened device is; nil means IdentifyIoctl.
	Identify func(f *os.File) (DeviceInfo, error)
	// Logf receives one line per event (device seen, grabbed, gone).
	Logf func(format string, args ...any)

	mu      sync.Mutex
	open    map[string]*openDev
	skipped map[string]skipKey // devices looked at and not used, by path
}

type openDev struct {
	info DeviceInfo
	f    *os.File
	key  skipKey
}

// skipKey identifies one device node instance, so that a node that was
// rejected is not reopened at every scan, but a new node at the same path
// (a re-plug) is.
type skipKey struct {
	ino   uint64
	rdev  uint64
	ctime int64
}

// Devices returns the devices currently open, sorted by path.
func (w *Watcher) Devices() []DeviceInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]DeviceInfo, 0, len(w.open))
	for _, d := range w.open {
		out = append(out, d.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func (w *Watcher) logf(format string, args ...any) {
	if w.Logf != nil {
		w.Logf(format, args...)
	}
}

// Run watches until ctx is done, sending presses on out. It returns
// ctx.Err() after closing every device.
func (w *Watcher) Run(ctx context.Context, out chan<- Press) error {
	w.mu.Lock()
	w.open = map[string]*openDev{}
	w.skipped = map[string]skipKey{}
	w.mu.Unlock()
	rescan := w.Rescan
	if rescan <= 0 {
		rescan = 5 * time.Second
	}
	var wg sync.WaitGroup
	defer func() {
		w.mu.Lock()
		for _, d := range w.open {
			d.f.Close() // wakes the reader
		}
		w.mu.Unlock()
		wg.Wait()
	}()

	notify := make(chan struct{}, 1)
	in := &inotify{}
	defer in.close()
	tick := time.NewTicker(rescan)
	defer tick.Stop()
	for {
		if !in.active() {
			if err := in.watch(w.Dir, notify); err == nil {
				w.logf("trigger: watching %s", w.Dir)
			}
		}
		w.scan(ctx, &wg, out)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-notify:
		case <-tick.C:
		}
	}
}

// scan opens every new accepted device in Dir.
func (w *Watcher) scan(ctx context.Context, wg *sync.WaitGroup, out chan<- Press) {
	ents, err := os.ReadDir(w.Dir)
	if err != nil {
		return // no input device yet: /dev/input appears with the first one
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "event") {
			continue
		}
		path := filepath.Join(w.Dir, e.Name())
		key, err := nodeKey(path)
		if err != nil {
			continue
		}
		w.mu.Lock()
		_, isOpen := w.open[path]
		sk, wasSkipped := w.skipped[path]
		w.mu.Unlock()
		if isOpen || (wasSkipped && sk == key) {
			continue
		}
		d, err := w.openDevice(path, key)
		if err != nil {
			w.logf("trigger: %v", err)
			w.mu.Lock()
			w.skipped[path] = key
			w.mu.Unlock()
			continue
		}
		if d == nil {
			w.mu.Lock()
			w.skipped[path] = key
			w.mu.Unlock()
			continue
		}
		w.mu.Lock()
		w.open[path] = d
		delete(w.skipped, path)
		w.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.read(ctx, d, out)
			w.mu.Lock()
			if w.open[path] == d {
				delete(w.open, path)
			}
			// A node that failed stays skipped until it changes
			// (a re-plug makes a new node).
			w.skipped[path] = d.key
			w.mu.Unlock()
			d.f.Close()
			if ctx.Err() == nil {
				w.logf("trigger: device gone: %s: %v", d.info, err)
			}
		}()
	}
}

func nodeKey(path string) (skipKey, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return skipKey{}, err
	}
	return skipKey{ino: st.Ino, rdev: uint64(st.Rdev), ctime: st.Ctim.Nano()}, nil
}

// openDevice opens and identifies path; nil, nil means not accepted.
func (w *Watcher) openDevice(path string, key skipKey) (*openDev, error) {
	// O_NONBLOCK puts the file in Go's poller, so Close wakes a blocked
	// Read; it also keeps open from waiting for a FIFO's writer.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	identify := w.Identify
	if identify == nil {
		identify = IdentifyIoctl
	}
	info, err := identify(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	info.Path = path
	if _, ok := w.matchFor(info); !ok {
		f.Close()
		w.logf("trigger: ignoring %s", info)
		return nil, nil
	}
	if w.Grab {
		if err := Grab(f); err != nil {
			// Still usable: presses arrive, they just also reach others.
			w.logf("trigger: %s: grab failed, reading shared: %v", info, err)
		} else {
			w.logf("trigger: grabbed %s", info)
		}
	}
	w.logf("trigger: device %s accepted", info)
	return &openDev{info: info, f: f, key: key}, nil
}

// matchFor returns the union of the matching entries' keys (nil: any key).
func (w *Watcher) matchFor(info DeviceInfo) (Match, bool) {
	var m Match
	found := false
	for _, e := range w.Matches {
		if !e.Accepts(info) {
			continue
		}
		if found && len(m.Keys) == 0 {
			continue // already any key
		}
		if len(e.Keys) == 0 {
			m.Keys = nil
			found = true
			continue
		}
		if !found || len(m.Keys) > 0 {
			m.Keys = append(m.Keys, e.Keys...)
		}
		found = true
	}
	return m, found
}

// read turns the device's events into presses until it fails.
func (w *Watcher) read(ctx context.Context, d *openDev, out chan<- Press) error {
	m, _ := w.matchFor(d.info)
	buf := make([]byte, 64*EventSize)
	have := 0
	for {
		n, err := d.f.Read(buf[have:])
		have += n
		i := 0
		for ; have-i >= EventSize; i += EventSize {
			ev, _ := DecodeEvent(buf[i : i+EventSize])
			// Value 1 is key down; 2 (autorepeat) and 0 (up) are not presses.
			if ev.Type != EvKey || ev.Value != 1 || !m.triggers(ev.Code) {
				continue
			}
			p := Press{Time: ev.Time, Key: ev.Code, Device: d.info}
			now := time.Now()
			if dt := now.Sub(ev.Time); dt < -2*time.Second || dt > 2*time.Second {
				p.Time = now // the event clock disagrees: trust the read time
			}
			select {
			case out <- p:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		copy(buf, buf[i:have])
		have -= i
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("end of file")
			}
			return err
		}
	}
}

// inotify notifies on changes in one directory.
type inotify struct {
	f    *os.File
	done chan struct{}
}

func (in *inotify) active() bool {
	if in.f == nil {
		return false
	}
	select {
	case <-in.done:
		in.f = nil
		return false
	default:
		return true
	}
}

func (in *inotify) watch(dir string, notify chan<- struct{}) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	mask := uint32(unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_ATTRIB | unix.IN_DELETE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF)
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		return fmt.Errorf("inotify %s: %w", dir, err)
	}
	in.f = os.NewFile(uintptr(fd), "inotify")
	in.done = make(chan struct{})
	f, done := in.f, in.done
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			gone := false
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafePointer(buf[off:]))
				if ev.Mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_IGNORED) != 0 {
					gone = true
				}
				off += unix.SizeofInotifyEvent + int(ev.Len)
			}
			select {
			case notify <- struct{}{}:
			default:
			}
			if gone {
				f.Close()
				return
			}
		}
	}()
	return nil
}

func (in *inotify) close() {
	if in.f != nil {
		in.f.Close()
		<-in.done
	}
}

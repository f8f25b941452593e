package follow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/presscap/presscap/probe/internal/export"
	"github.com/presscap/presscap/probe/internal/window"
	"github.com/presscap/presscap/ringfs"
)

// testRing is a ring with one link that packets are appended to and
// flushed, and the Rings the followers read it from (nil ring: none open).
type testRing struct {
	t    *testing.T
	mu   sync.Mutex
	ring *ringfs.Ring
	root string
	link uint16
}

func newTestRing(t *testing.T) *testRing {
	root := t.TempDir()
	ring, err := ringfs.Create(filepath.Join(root, "ring"), ringfs.Options{Size: ringfs.MinSize, Buffered: true, FlushInterval: -1, BlockSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ring.Close() })
	link, err := ring.AddLink(ringfs.Link{Name: "eth0", LinkType: 1})
	if err != nil {
		t.Fatal(err)
	}
	return &testRing{t: t, ring: ring, root: root, link: link}
}

func (r *testRing) id() string { return fmt.Sprintf("%016x", r.ring.ID()) }

func (r *testRing) RingWithID() (*ringfs.Ring, string, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ring == nil {
		return nil, "", "", errors.New("no ring")
	}
	return r.ring, r.root, r.id(), nil
}

func (r *testRing) Opened() time.Time { return time.Time{} }

// add appends packets n from..to-1, one a millisecond from base, and makes
// them readable to a follower.
func (r *testRing) add(base time.Time, from, to int) {
	for i := from; i < to; i++ {
		f := make([]byte, 100)
		copy(f, []byte{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00})
		f[98], f[99] = byte(i>>8), byte(i)
		rec := ringfs.Record{Time: base.Add(time.Duration(i) * time.Millisecond).UnixNano(), Link: r.link, OrigLen: uint32(len(f)), Data: f}
		if err := r.ring.Append(rec); err != nil {
			r.t.Fatal(err)
		}
	}
	if err := r.ring.Flush(); err != nil {
		r.t.Fatal(err)
	}
}

// setup returns followers of r writing into <root>/queue, and the records
// they persist.
func setup(t *testing.T, r *testRing, lock *sync.Mutex) (*Followers, func() []*window.Window) {
	var pmu sync.Mutex
	var recs []*window.Window
	fs := New(Config{Rings: r, Lock: lock, Now: time.Now, Host: "probe",
		Dir:   func(root string) string { return filepath.Join(root, "queue") },
		Specs: func(*window.Window) []export.Spec { return []export.Spec{{Name: "all"}} },
		Persist: func(rec *window.Window) {
			pmu.Lock()
			recs = append(recs, rec)
			pmu.Unlock()
		},
		Logf: t.Logf})
	if err := os.MkdirAll(filepath.Join(r.root, "queue"), 0o700); err != nil {
		t.Fatal(err)
	}
	return fs, func() []*window.Window {
		pmu.Lock()
		defer pmu.Unlock()
		return slices.Clone(recs)
	}
}

// waitPartial waits until a partial file in dir holds more than its
// header: the follower has read the window's start.
func waitPartial(t *testing.T, dir string) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if ps, _ := filepath.Glob(filepath.Join(dir, export.PartialPrefix+"*")); len(ps) == 1 {
			if st, err := os.Stat(ps[0]); err == nil && st.Size() > 1000 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no follower's partial file with packets in %s", dir)
}

// sameAsCut checks that man's files in dir are those one cut of w at its
// end writes, and that no partial file is left.
func sameAsCut(t *testing.T, r *testRing, w *window.Window, dir string, man export.Manifest) {
	t.Helper()
	once := t.TempDir()
	want, err := export.Cut(context.Background(), r.ring, w, []export.Spec{{Name: "all"}}, "probe", once, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Files) != 1 || len(want.Files) != 1 {
		t.Fatalf("files %v, one cut: %v", man.Files, want.Files)
	}
	a, _ := os.ReadFile(filepath.Join(dir, man.Files[0].File))
	b, _ := os.ReadFile(filepath.Join(once, want.Files[0].File))
	if !bytes.Equal(a, b) || man.Files[0].Packets != want.Files[0].Packets || man.Files[0].Packets == 0 {
		t.Errorf("%s: followed file (%d bytes, %d packets) differs from one cut at the end (%d bytes, %d packets)",
			man.Files[0].File, len(a), man.Files[0].Packets, len(b), want.Files[0].Packets)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, export.PartialPrefix+"*")); len(left) != 0 {
		t.Errorf("partial files left: %v", left)
	}
}

// startFollowed starts, under lock, the follower of window id, pressed
// at base+press ms and open for the next hour, and waits until it has
// read the window's start into dir.
func startFollowed(ctx context.Context, t *testing.T, fs *Followers, lock *sync.Mutex, id int, base time.Time, press int, dir string) *window.Window {
	p := base.Add(time.Duration(press) * time.Millisecond)
	w := &window.Window{ID: id, Presses: []window.PressInfo{{Time: p}}, From: p.Add(-time.Second), To: time.Now().Add(time.Hour)}
	lock.Lock()
	fs.Start(ctx, w)
	lock.Unlock()
	waitPartial(t, dir)
	return w
}

// TestFollowThenCut: a follower writes the window's files from the press
// on, as the ring gains its packets (its base counted among the wanted
// ones from its start), and Cut at the window's end completes them into
// what one cut at the end writes; the follower is gone then.
func TestFollowThenCut(t *testing.T) {
	r := newTestRing(t)
	var mu sync.Mutex
	fs, _ := setup(t, r, &mu)
	base := time.Now().Add(-3 * time.Second)
	r.add(base, 0, 2000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := filepath.Join(r.root, "queue")
	w := startFollowed(ctx, t, fs, &mu, 3, base, 1500, dir)
	if got, want := fs.Bases(), []string{export.FileBase("probe", w)}; !slices.Equal(got, want) {
		t.Errorf("bases with a follower: %v, want %v", got, want)
	}
	r.add(base, 2000, 4000)
	mu.Lock()
	w.To = base.Add(3500 * time.Millisecond)
	mu.Unlock()
	man, err := fs.Cut(ctx, r.ring, r.id(), w, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameAsCut(t, r, w, dir, man)
	if b := fs.Bases(); len(b) != 0 {
		t.Errorf("bases after the cut: %v, want none", b)
	}
}

// TestFollowStopContinues: stopped (a shutdown), a follower makes its
// files durable and persists the window's record with how far they go; a
// Cut of the next run continues them from there into the same files as one
// cut at the end, and Drop of a window that has a follower removes its
// files.
func TestFollowStopContinues(t *testing.T) {
	r := newTestRing(t)
	var mu sync.Mutex
	fs, recs := setup(t, r, &mu)
	base := time.Now().Add(-3 * time.Second)
	r.add(base, 0, 2000)
	ctx, cancel := context.WithCancel(context.Background())
	dir := filepath.Join(r.root, "queue")
	startFollowed(ctx, t, fs, &mu, 4, base, 1500, dir)
	cancel()
	fs.Wait()
	rs := recs()
	if len(rs) == 0 || rs[len(rs)-1].Progress == nil {
		t.Fatalf("records persisted at the stop: %v, want the last with its progress", rs)
	}
	rec := rs[len(rs)-1]
	if p := rec.Progress; p.Ring != r.id() || p.Dir != dir || len(p.Files) != 1 || p.Files[0].Packets == 0 {
		t.Fatalf("progress at the stop: %+v, want ring %s, dir %s, one file with packets", p, r.id(), dir)
	}

	// The next run: the record read back, the rest of the window recorded.
	r.add(base, 2000, 4000)
	next, _ := setup(t, r, &mu)
	rec.To = base.Add(3500 * time.Millisecond)
	man, err := next.Cut(context.Background(), r.ring, r.id(), rec, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameAsCut(t, r, rec, dir, man)

	// A window saved before: its follower's files go.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	w2 := startFollowed(ctx2, t, next, &mu, 5, base, 2500, dir)
	next.Drop(w2.ID)
	if left, _ := filepath.Glob(filepath.Join(dir, export.PartialPrefix+"*")); len(left) != 0 {
		t.Errorf("partial files left after Drop: %v", left)
	}
	if b := next.Bases(); len(b) != 0 {
		t.Errorf("bases after Drop: %v, want none", b)
	}
}

package service

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/internal/export"
	"github.com/presscap/presscap/probe/internal/export/follow"
	"github.com/presscap/presscap/probe/internal/window"
	"github.com/presscap/presscap/ringfs"
)

// noRing is storage without a ring open.
type noRing struct{}

func (noRing) RingWithID() (*ringfs.Ring, string, string, error) {
	return nil, "", "", errors.New("no ring")
}
func (noRing) Opened() time.Time { return time.Time{} }

// TestCleanPartials: after a save, partial files no window continues are
// removed; those of a window with a record, an open window or a follower
// stay (which names are partial files: export's TestCleanPartials). While
// a record cannot be read, nothing is removed.
func TestCleanPartials(t *testing.T) {
	dir, pend := t.TempDir(), t.TempDir()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	win := func(id, sec int) *window.Window {
		p := base.Add(time.Duration(sec) * time.Second)
		return &window.Window{ID: id, Presses: []window.PressInfo{{Time: p, Synced: true}}, From: p.Add(-time.Second), To: p.Add(time.Second)}
	}
	stale, recorded, open, followed := win(1, 0), win(2, 10), win(3, 20), win(4, 30)
	specs := []export.Spec{{Name: "all"}, {Name: "sip", Format: "pcapng"}}
	var names []string
	for _, w := range []*window.Window{stale, recorded, open, followed} {
		for _, spec := range specs {
			names = append(names, export.PartialName(export.FileBase("probe", w), spec))
		}
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := &Service{host: "probe", logf: t.Logf, pend: window.Store{Dir: pend}, windows: &window.Windows{}}
	// A follower that finds no ring writes nothing, and counts.
	s.follow = follow.New(follow.Config{Rings: noRing{}, Lock: &s.mu, Now: time.Now, Host: s.host, Logf: t.Logf})
	ctx, cancel := context.WithCancel(context.Background())
	defer s.follow.Wait()
	defer cancel()
	s.follow.Start(ctx, followed)
	s.windows.Restore(open, time.Now())
	if err := s.pend.Save(*recorded); err != nil {
		t.Fatal(err)
	}
	left := func() []string { return testtool.DirNames(t, dir) }
	all := left()

	// A record moved aside: its window's files may be wanted.
	if err := os.WriteFile(filepath.Join(pend, "9.json.corrupt"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cleanPartials(dir)
	if got := left(); !slices.Equal(got, all) {
		t.Errorf("with a record that cannot be read: left %v, want all of %v", got, all)
	}
	os.Remove(filepath.Join(pend, "9.json.corrupt"))

	s.cleanPartials(dir)
	want := slices.Clone(all)
	want = slices.DeleteFunc(want, func(n string) bool { return n == names[0] || n == names[1] })
	if got := left(); !slices.Equal(got, want) {
		t.Errorf("left %v, want %v (the stale window's two partial files removed)", got, want)
	}
}

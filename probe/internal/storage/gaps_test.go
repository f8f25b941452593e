package storage

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/presscap/presscap/ringfs"
)

// permManager is a manager whose ring is on a /perm stand-in (no disk).
func permManager(t *testing.T, perm string) *Manager {
	return New(Config{
		Finder:       DiskFinder{SysBlock: t.TempDir(), DevDir: t.TempDir(), Label: "NOSUCHLABEL"},
		MountPoint:   filepath.Join(t.TempDir(), "mnt"),
		FallbackPerm: true, PermDir: perm,
		RingDir: "ring", RingSize: ringfs.MinSize, Retry: time.Hour, Links: []string{"eth0", "eth1"},
	}, t.Logf)
}

func ringGaps(t *testing.T, s *Manager) string {
	t.Helper()
	ring, _, err := s.Ring()
	if err != nil {
		t.Fatal(err)
	}
	gs, err := ring.Gaps(context.Background(), math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(gs)
}

// TestLinkGapsRecorded: a link's changes become gap records in the ring:
// one that went down before the ring opened too; a gap the ring holds open
// after a stop ends when a new run opens the ring with the link up, and
// continues when the link is still down.
func TestLinkGapsRecorded(t *testing.T) {
	perm := t.TempDir()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ns := func(d time.Duration) int64 { return t0.Add(d).UnixNano() }
	s := permManager(t, perm)
	s.LinkChanged("eth1", false, t0) // before the ring opens
	s.LinkChanged("eth9", false, t0) // no such ring link: nothing
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	waitState(t, s, DiskRecording)
	s.LinkChanged("eth1", false, t0.Add(time.Second)) // no change
	s.LinkChanged("eth1", true, t0.Add(2*time.Second))
	s.LinkChanged("eth0", false, t0.Add(3*time.Second))
	want := fmt.Sprint([]ringfs.Gap{{Link: 1, From: ns(0), To: ns(2 * time.Second)}, {Link: 0, From: ns(3 * time.Second)}})
	if got := ringGaps(t, s); got != want {
		t.Errorf("gaps %s, want %s", got, want)
	}
	cancel()
	<-done

	// A new run: eth0 is up when the ring opens (its gap ends then), eth1
	// goes down again and is still down at the next start.
	s = permManager(t, perm)
	s.LinkChanged("eth0", true, t0.Add(time.Hour))
	runStorage(t, s)
	st := waitState(t, s, DiskRecording)
	got := ringGaps(t, s)
	opened := s.Opened().UnixNano()
	want = fmt.Sprint([]ringfs.Gap{{Link: 1, From: ns(0), To: ns(2 * time.Second)}, {Link: 0, From: ns(3 * time.Second), To: opened}})
	if got != want {
		t.Errorf("after a restart with eth0 up: gaps %s, want %s (%+v)", got, want, st)
	}
	s.LinkChanged("eth1", false, t0.Add(5*time.Second))
	ring, _, _ := s.Ring()
	ring.Flush()

	// What a next start finds with eth1 still down: the ring's open gap
	// continues (no second start recorded), and ends when eth1 is back.
	s3 := permManager(t, perm)
	s3.LinkChanged("eth1", false, t0.Add(time.Hour))
	open := s3.openGaps(ring)
	s3.mu.Lock()
	s3.ring = ring
	s3.resumeGapsLocked(ring, open, t0.Add(time.Hour))
	s3.mu.Unlock()
	if s3.down["eth1"] != ns(5*time.Second) {
		t.Errorf("a gap open in the ring and the link still down: down since %d, want the ring's %d", s3.down["eth1"], ns(5*time.Second))
	}
	s3.LinkChanged("eth1", true, t0.Add(2*time.Hour))
	want = fmt.Sprint([]ringfs.Gap{{Link: 1, From: ns(0), To: ns(2 * time.Second)}, {Link: 0, From: ns(3 * time.Second), To: opened},
		{Link: 1, From: ns(5 * time.Second), To: ns(2 * time.Hour)}})
	if got := ringGaps(t, s); got != want {
		t.Errorf("eth1 down across a restart: gaps %s, want %s", got, want)
	}
}

package config

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/ringfs"
)

// TestMaxAgeDefaultFollowsTheTrigger: ring.max_age, unless a file names
// it, is the longest before (trigger or profile) plus max_window; check
// warns when a configuration keeps more, or everything, whatever the ring
// holds at ring.expected_mbps.
func TestMaxAgeDefaultFollowsTheTrigger(t *testing.T) {
	if d := DefaultConfig().Ring.MaxAge.D(); d != time.Minute+30*time.Minute {
		t.Errorf("default max_age %v, want before + max_window = 31m", d)
	}
	profiles := `"profiles": [{"name": "phone", "keys": ["KEY_PAGEUP"], "before": "5m"}, {"name": "internet", "keys": ["KEY_PAGEDOWN"]}]`
	for js, want := range map[string]time.Duration{
		`{"trigger": {"before": "2m", "max_window": "10m"}}`:                             12 * time.Minute,
		`{"trigger": {"before": "2m", "max_window": "10m", ` + profiles + `}}`:           15 * time.Minute,
		`{"trigger": {"before": "2m", "max_window": "10m"}, "ring": {"max_age": "0s"}}`:  0,
		`{"trigger": {"before": "2m", "max_window": "10m"}, "ring": {"max_age": "20m"}}`: 20 * time.Minute,
		`{"trigger": {"before": "2m", "max_window": "10m"}, "ring": {"max_age": "12m"}}`: 12 * time.Minute,
		// The ring holds about 5m43s at 100 Mbit/s, but at night hours.
		`{"trigger": {"before": "2m", "max_window": "10m"}, "ring": {"max_age": "2h", "expected_mbps": 100}}`: 2 * time.Hour,
	} {
		c, err := Parse([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		if c.Ring.MaxAge.D() != want {
			t.Errorf("%s: max_age %v, want %v", js, c.Ring.MaxAge.D(), want)
		}
		warned := strings.Contains(c.Warnings().Error(), "ring.max_age")
		if keepsMore := want == 0 || want > c.NeededAge().D(); warned != keepsMore {
			t.Errorf("%s: warned %v (%v), want %v", js, warned, c.Warnings(), keepsMore)
		}
	}
}

// TestMaxAgeDefaultDropsOldPackets: a ring opened with the default
// max_age of a configuration (before 10s, max_window 20s: 30s) returns
// none of the packets older than that before its newest.
func TestMaxAgeDefaultDropsOldPackets(t *testing.T) {
	c, err := Parse([]byte(`{"trigger": {"before": "10s", "after": "5s", "max_window": "20s"}}`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := ringfs.Create(t.TempDir(), ringfs.Options{Size: ringfs.MinSize, FlushInterval: -1, MaxAge: c.Ring.MaxAge.D()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	link, err := r.AddLink(ringfs.Link{Name: "eth0", LinkType: 1, SnapLen: 65535})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC).UnixNano()
	for s := range 61 { // one packet a second for a minute
		if err := r.Append(ringfs.Record{Time: t0 + int64(s)*int64(time.Second), Link: link, OrigLen: 60, Data: make([]byte, 60)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	var n int
	oldest := int64(1 << 62)
	if _, err := r.Read(context.Background(), 0, 1<<62, func(rec ringfs.Record) error {
		n++
		oldest = min(oldest, rec.Time)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if cut := t0 + int64(30*time.Second); n != 31 || oldest != cut {
		t.Errorf("ring returns %d packets from %v, want the 31 of the last 30s from %v", n, time.Duration(oldest-t0), time.Duration(cut-t0))
	}
}

package ringfs

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImpossibleMetaRefused: a ring.json whose geometry or links Create
// never writes is refused at Open, naming the field (block_size 0 used to
// open, with a block size of nothing).
func TestImpossibleMetaRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ring")
	r, err := Create(dir, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddLink(Link{Name: "eth0", LinkType: 1}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	good, err := os.ReadFile(filepath.Join(dir, metaName))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		field string
		edit  func(m map[string]any)
	}{
		{"block_size 0", func(m map[string]any) { m["block_size"] = 0 }},
		{"block_size 65537", func(m map[string]any) { m["block_size"] = 65537 }},
		{"block_size 33554432", func(m map[string]any) { m["block_size"] = 32 << 20 }},
		{"block_size -4096", func(m map[string]any) { m["block_size"] = -4096 }},
		{"segment_size 0", func(m map[string]any) { m["segment_size"] = 0 }},
		{"segment_size 8388608", func(m map[string]any) { m["segment_size"] = 8 << 20 }},
		{"segments 0", func(m map[string]any) { m["segments"] = 0 }},
		{"segments 17", func(m map[string]any) { m["segments"] = 17 }},
		{"size", func(m map[string]any) { m["size"] = 0 }},
		{"size", func(m map[string]any) { m["size"] = -1 }},
		{"size 4611686018427387904", func(m map[string]any) { m["size"] = int64(1) << 62 }},
		{"max_age_ns -1", func(m map[string]any) { m["max_age_ns"] = -1 }},
		{"ring_id 0", func(m map[string]any) { m["ring_id"] = 0 }},
		{"links[0].name", func(m map[string]any) { m["links"] = []any{map[string]any{"name": "", "link_type": 1}} }},
		{"links[0].name", func(m map[string]any) { m["links"] = []any{map[string]any{"name": "../../etc", "link_type": 1}} }},
		{"links[0].name", func(m map[string]any) {
			m["links"] = []any{map[string]any{"name": strings.Repeat("x", 10<<10), "link_type": 1}}
		}},
		{"links[1].name \"eth0\" repeats links[0]", func(m map[string]any) {
			m["links"] = []any{map[string]any{"name": "eth0", "link_type": 1}, map[string]any{"name": "eth0", "link_type": 105}}
		}},
	}
	for _, c := range cases {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		c.edit(m)
		b, _ := json.Marshal(m)
		if err := os.WriteFile(filepath.Join(dir, metaName), b, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, ro := range []bool{false, true} {
			r, err := Open(dir, Options{ReadOnly: ro, FlushInterval: -1})
			if err == nil {
				r.Close()
				t.Errorf("%s (read-only %v): opened", c.field, ro)
				continue
			}
			if !errors.Is(err, ErrNotRing) || !strings.Contains(err.Error(), c.field) || len(err.Error()) > 1000 {
				t.Errorf("%s (read-only %v): %.300v, want ErrNotRing naming the field", c.field, ro, err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, metaName), good, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err = Open(dir, Options{FlushInterval: -1})
	if err != nil {
		t.Fatalf("the original ring.json: %v", err)
	}
	for _, name := range []string{"", "a/b", "..", "tab\there", strings.Repeat("x", MaxLinkName+1)} {
		if _, err := r.AddLink(Link{Name: name, LinkType: 1}); err == nil {
			t.Errorf("AddLink(%q) succeeded", name)
		}
	}
	r.Close()
}

// TestDamagedSegmentHeaderCounted: a segment whose header page is damaged
// is not served, and its blocks are counted as corrupt in every read whose
// window they overlap (they used to vanish with Corrupt 0), whether the
// first index entry survives or only the first block header does.
func TestDamagedSegmentHeaderCounted(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		flips []int64 // byte offsets in segment 1
	}{
		{"ring id", []int64{20}},
		{"magic and index entry 0", []int64{3, pageSize + 10}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			r, err := Create(dir, testOpts())
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(21, 22))
			recs := genRecords(rng, 12000, func(i int) int64 { return base + int64(i) })
			appendAll(t, r, recs)
			if err := r.Flush(); err != nil {
				t.Fatal(err)
			}
			vs, err := r.snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if len(vs) < 3 {
				t.Fatalf("%d segments written, want 3 or more", len(vs))
			}
			victim := vs[1]
			path := r.meta.segPath(dir, victim.slot)
			r.Close()
			for _, off := range c.flips {
				flipByte(t, path, off)
			}
			lost := map[int64]bool{}
			for _, rec := range recs {
				if rec.Time >= victim.tmin && rec.Time <= victim.tmax {
					lost[rec.Time] = true
				}
			}
			var kept []Record
			for _, rec := range recs {
				if !lost[rec.Time] {
					kept = append(kept, rec)
				}
			}
			for _, ro := range []bool{true, false} {
				r, err := Open(dir, Options{ReadOnly: ro, FlushInterval: -1})
				if err != nil {
					t.Fatal(err)
				}
				got, st := readAll(t, r, base, 1<<62)
				if st.Corrupt != len(victim.entries) {
					t.Errorf("read-only %v: %d corrupt blocks, want the damaged segment's %d", ro, st.Corrupt, len(victim.entries))
				}
				sameRecords(t, "around the damaged segment", got, kept)
				// A window inside the damaged segment counts only its blocks there.
				mid := victim.entries[len(victim.entries)/2]
				if _, st := readAll(t, r, mid.tmin, mid.tmax+1); st.Corrupt < 1 || st.Corrupt > 3 {
					t.Errorf("read-only %v: window of one block: %d corrupt", ro, st.Corrupt)
				}
				if _, st := readAll(t, r, victim.tmax+1, 1<<62); st.Corrupt != 0 {
					t.Errorf("read-only %v: window after the damaged segment: %d corrupt", ro, st.Corrupt)
				}
				r.Close()
			}
		})
	}
}

package ringfs

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func gapsIn(t *testing.T, r *Ring, from, to int64) []Gap {
	t.Helper()
	gs, err := r.Gaps(context.Background(), from, to)
	if err != nil {
		t.Fatalf("gaps [%d, %d): %v", from, to, err)
	}
	return gs
}

// TestGapRecords: gap records come back from Gaps, paired down/up, for the
// windows they overlap, on the writer, after a reopen and read-only; they
// are never delivered as packets nor counted as such.
func TestGapRecords(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r, err := Create(dir, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(31, 32))
	const ms = int64(1_000_000)
	recs := genRecords(rng, 6000, func(i int) int64 { return base + int64(i)*ms })
	// Link 1 down at 1000 ms, back at 2000 ms; link 2 down at 3000 ms and
	// never back; link 0's gap [4000, 4500) learned only afterwards.
	marks := map[int]Gap{
		1000: {Link: 1, From: base + 1000*ms},
		2000: {Link: 1, From: base + 1000*ms, To: base + 2000*ms},
		3000: {Link: 2, From: base + 3000*ms},
		5000: {Link: 0, From: base + 4000*ms, To: base + 4500*ms},
	}
	for i, rec := range recs {
		if g, ok := marks[i]; ok {
			if err := r.AddGap(g); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	l1 := Gap{Link: 1, From: base + 1000*ms, To: base + 2000*ms}
	l2 := Gap{Link: 2, From: base + 3000*ms}
	l0 := Gap{Link: 0, From: base + 4000*ms, To: base + 4500*ms}
	cases := []struct {
		from, to int64
		want     []Gap
	}{
		{base, base + 6000*ms, []Gap{l1, l2, l0}},
		{base, base + 1000*ms, nil},                         // ends where the gap starts
		{base + 1500*ms, base + 1600*ms, []Gap{l1}},         // inside the gap: no record in the window
		{base + 2000*ms, base + 2999*ms, nil},               // after link 1 came back
		{base + 5900*ms, base + 5950*ms, []Gap{l2}},         // link 2 still down
		{base + 4200*ms, base + 4300*ms, []Gap{l2, l0}},     // inside a gap recorded afterwards
		{base + 1999*ms, base + 3000*ms + 1, []Gap{l1, l2}}, // both edges
	}
	check := func(what string, r *Ring) {
		t.Helper()
		for _, c := range cases {
			if got := gapsIn(t, r, c.from, c.to); !reflect.DeepEqual(got, c.want) {
				t.Errorf("%s: gaps [%d ms, %d ms) = %+v, want %+v", what, (c.from-base)/ms, (c.to-base)/ms, got, c.want)
			}
		}
		got, st := readAll(t, r, base, base+6000*ms)
		sameRecords(t, what+": packets around gap records", got, recs)
		if st.Packets != uint64(len(recs)) {
			t.Errorf("%s: read stats %+v", what, st)
		}
		in, err := r.Info()
		if err != nil || in.Packets != uint64(len(recs)) {
			t.Errorf("%s: info %+v, %v: want %d packets", what, in, err, len(recs))
		}
	}
	check("writer", r)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	check("read-only", ro)
	ro.Close()
	r, err = Open(dir, Options{FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	check("reopened writer", r)
	if _, err := r.Gaps(context.Background(), 2, 1); !errors.Is(err, ErrBadWindow) {
		t.Errorf("gaps of a reversed window: %v", err)
	}
	if err := r.AddGap(Gap{Link: 1, From: 10, To: 5}); err == nil {
		t.Error("a gap ending before it starts was taken")
	}
}

// TestGapRecordsRecovered: a gap in a block the index does not know yet (a
// crash before the index was written) is found by the header walk; a gap in
// a torn block is lost with the block, never half read.
func TestGapRecordsRecovered(t *testing.T) {
	dir := t.TempDir()
	r, err := Create(dir, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(33, 34))
	recs := genRecords(rng, 3000, func(i int) int64 { return base + int64(i) })
	g1 := Gap{Link: 0, From: base + 10, To: base + 20}
	g2 := Gap{Link: 1, From: base + 2500, To: base + 2600}
	appendAll(t, r, recs[:1000])
	if err := r.AddGap(g1); err != nil {
		t.Fatal(err)
	}
	appendAll(t, r, recs[1000:2600])
	if err := r.AddGap(g2); err != nil {
		t.Fatal(err)
	}
	appendAll(t, r, recs[2600:])
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	// The blocks holding the two gaps.
	var idx []int
	vs, _ := r.snapshot()
	k := 0
	for _, v := range vs {
		for _, e := range v.entries {
			if e.flags&flagGaps != 0 {
				idx = append(idx, k)
				if e.blockLen != pageSize || e.packets != 0 {
					t.Errorf("a gap's block: %d bytes, %d packets; want a page of its own", e.blockLen, e.packets)
				}
			}
			k++
		}
	}
	if len(idx) != 2 {
		t.Fatalf("blocks flagged with gaps: %v, want 2", idx)
	}
	p1, _, _ := blockPos(t, r, idx[0])
	p2, off2, _ := blockPos(t, r, idx[1])
	r.Close()
	// Wipe the first segment's index: the walk over block headers must
	// find the flags again.
	if p1 != filepath.Join(dir, "seg-000000") {
		t.Fatalf("first gap block in %s", p1)
	}
	f, err := os.OpenFile(p1, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	idxPage := make([]byte, pageSize)
	f.ReadAt(idxPage, pageSize)
	f.WriteAt(make([]byte, pageSize), pageSize)
	ro, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := gapsIn(t, ro, base, base+1<<40); !reflect.DeepEqual(got, []Gap{g1, g2}) {
		t.Errorf("gaps after index loss: %+v, want %+v", got, []Gap{g1, g2})
	}
	ro.Close()
	// With the index back, tear the second gap's block.
	f.WriteAt(idxPage, pageSize)
	f.Close()
	flipByte(t, p2, off2+int64(blockHdrSize)+10)
	ro, err = Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if got := gapsIn(t, ro, base, base+1<<40); !reflect.DeepEqual(got, []Gap{g1}) {
		t.Errorf("gaps with a torn block: %+v, want only %+v", got, g1)
	}
	_, st := readAll(t, ro, base, base+1<<40)
	if st.Corrupt != 1 {
		t.Errorf("read stats %+v, want the torn gap block counted corrupt", st)
	}
}

// TestOldFormatRefused: a ring of format 1 (before gap records and sealed
// blocks) is not opened nor replaced: ErrNotRing naming both formats, as
// for any other format.
func TestOldFormatRefused(t *testing.T) {
	dir := t.TempDir()
	r, err := Create(dir, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	meta := filepath.Join(dir, metaName)
	b, _ := os.ReadFile(meta)
	old := strings.Replace(string(b), metaFormat, "presscap-ring/1", 1)
	os.WriteFile(meta, []byte(old), 0o644)
	for _, ro := range []bool{false, true} {
		_, err := Open(dir, Options{ReadOnly: ro})
		if !errors.Is(err, ErrNotRing) || !strings.Contains(err.Error(), `"presscap-ring/1"`) || !strings.Contains(err.Error(), metaFormat) {
			t.Errorf("open (read-only %v) of a format 1 ring: %v, want ErrNotRing naming the formats", ro, err)
		}
	}
	if _, _, err := OpenOrCreate(dir, Options{Size: MinSize}); !errors.Is(err, ErrNotRing) {
		t.Errorf("OpenOrCreate of a format 1 ring: %v", err)
	}
	if b, _ := os.ReadFile(meta); string(b) != old {
		t.Error("the format 1 ring.json was replaced")
	}
}

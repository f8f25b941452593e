package ringfs

import (
	"bytes"
	"context"
	"math/rand/v2"
	"slices"
	"testing"
)

func follow(t *testing.T, r *Ring, from, to int64, pos *Pos, push bool) ([]Record, ReadStats) {
	t.Helper()
	var got []Record
	st, err := r.Follow(context.Background(), from, to, pos, push, func(rec Record) error {
		rec.Data = bytes.Clone(rec.Data)
		got = append(got, rec)
		return nil
	})
	if err != nil {
		t.Fatalf("follow [%d, %d) from %+v: %v", from, to, *pos, err)
	}
	return got, st
}

// A ring that began after the window's start and never wrapped says so:
// the window is older than the ring.
func TestReadBeforeYoungRing(t *testing.T) {
	r, err := Create(t.TempDir(), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, st := readAll(t, r, base, base+100); !st.Truncated || st.Reason != ReasonYounger || st.Oldest != 0 || st.Missing != 100 {
		t.Errorf("empty ring: stats %+v, want truncated (%s), all 100 ns missing", st, ReasonYounger)
	}
	rng := rand.New(rand.NewPCG(21, 22))
	recs := genRecords(rng, 1000, func(i int) int64 { return base + 1000 + int64(i) })
	appendAll(t, r, recs)
	got, st := readAll(t, r, base, 1<<62)
	sameRecords(t, "young ring", got, recs)
	if !st.Truncated || st.Reason != ReasonYounger || st.Oldest != base+1000 || st.Missing != 1000 {
		t.Errorf("stats %+v, want truncated (%s) at %d, 1000 ns missing", st, ReasonYounger, base+1000)
	}
}

// Following a window in steps while it is written delivers exactly what one
// read at the end would, each record once.
func TestFollowInSteps(t *testing.T) {
	t.Parallel()
	r, err := Create(t.TempDir(), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rng := rand.New(rand.NewPCG(23, 24))
	recs := genRecords(rng, 40000, func(i int) int64 { return base + int64(i)*1000 })
	from, to := recs[5000].Time, recs[35000].Time
	var pos Pos
	var got []Record
	for i := 0; i < len(recs); i += 7000 {
		appendAll(t, r, recs[i:min(i+7000, len(recs))])
		g, st := follow(t, r, from, to, &pos, i%2 == 0)
		if st.Truncated {
			t.Fatalf("step at %d: stats %+v", i, st)
		}
		got = append(got, g...)
	}
	g, _ := follow(t, r, from, to, &pos, true)
	got = append(got, g...)
	sameRecords(t, "followed window", got, want(recs, from, to))
	if g, _ := follow(t, r, from, to, &pos, true); len(g) != 0 {
		t.Errorf("a step with nothing new delivered %d records", len(g))
	}
}

// When the writer laps a follower between two steps, the next step says
// the window lost blocks, and still delivers what is left in order.
func TestFollowOvertakenBetweenSteps(t *testing.T) {
	t.Parallel()
	r, err := Create(t.TempDir(), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rng := rand.New(rand.NewPCG(25, 26))
	// The ring holds about 90000 of these records.
	n := 240000
	if testing.Short() {
		n = 130000 // make check: the race detector makes each record slow
	}
	recs := genRecords(rng, n, func(i int) int64 { return base + int64(i)*1000 })
	var pos Pos
	appendAll(t, r, recs[:10000])
	got, st := follow(t, r, base, 1<<62, &pos, true)
	if st.Truncated || len(got) != 10000 {
		t.Fatalf("first step: %d records, stats %+v", len(got), st)
	}
	appendAll(t, r, recs[10000:])
	got, st = follow(t, r, base, 1<<62, &pos, true)
	if !st.Truncated || st.Reason != ReasonOvertaken || st.Oldest != got[0].Time || st.Missing <= 0 {
		t.Fatalf("lapped follower: stats %+v, want truncated (%s) at %d", st, ReasonOvertaken, got[0].Time)
	}
	k := int((got[0].Time - base) / 1000)
	sameRecords(t, "after the gap", got, recs[k:])
}

// A caller that knows since when the ring has been recording (Pos.Since)
// learns that a quiet line before the first packet lacks nothing, and that
// a ring that began after the window's start lacks the time until then.
func TestFollowSince(t *testing.T) {
	r, err := Create(t.TempDir(), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pos := Pos{Since: base + 500}
	if _, st := follow(t, r, base, base+2000, &pos, true); !st.Truncated || st.Reason != ReasonYounger || st.Oldest != base+500 || st.Missing != 500 {
		t.Errorf("empty ring recording since 500 ns into the window: stats %+v, want truncated (%s) at %d, 500 ns missing", st, ReasonYounger, base+500)
	}
	rng := rand.New(rand.NewPCG(27, 28))
	appendAll(t, r, genRecords(rng, 10, func(i int) int64 { return base + 1000 + int64(i) }))
	pos = Pos{Since: base}
	if _, st := follow(t, r, base, base+2000, &pos, true); st.Truncated {
		t.Errorf("recording since the window's start, first packet 1000 ns later: stats %+v, want whole", st)
	}
	pos = Pos{Since: base + 500}
	if _, st := follow(t, r, base, base+2000, &pos, true); !st.Truncated || st.Reason != ReasonYounger || st.Oldest != base+500 || st.Missing != 500 {
		t.Errorf("recording since 500 ns into the window: stats %+v, want truncated (%s) at %d, 500 ns missing", st, ReasonYounger, base+500)
	}
}

// A step cancelled part way (a shutdown) leaves pos where the blocks it did
// not deliver begin: the next step delivers the rest, each record once.
// The service records pos with the files at a stop and continues there.
func TestFollowCancelledResumes(t *testing.T) {
	t.Parallel()
	r, err := Create(t.TempDir(), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rng := rand.New(rand.NewPCG(29, 30))
	recs := genRecords(rng, 20000, func(i int) int64 { return base + int64(i)*1000 })
	appendAll(t, r, recs)
	ctx, cancel := context.WithCancel(context.Background())
	var pos Pos
	var got []Record
	_, err = r.Follow(ctx, base, 1<<62, &pos, true, func(rec Record) error {
		rec.Data = bytes.Clone(rec.Data)
		got = append(got, rec)
		if len(got) == 3000 {
			cancel()
		}
		return nil
	})
	if err == nil || len(got) >= len(recs) {
		t.Fatalf("cancelled step: err %v after %d of %d records, want the cancellation before the end", err, len(got), len(recs))
	}
	g, st := follow(t, r, base, 1<<62, &pos, true)
	if st.Truncated {
		t.Errorf("resumed step: stats %+v", st)
	}
	sameRecords(t, "cancelled and resumed", append(got, g...), recs)
}

// A read that begins where the ring reaches back to (the window's start is
// gone) and is then overtaken by the writer part way through has a hole
// after its first records: ReadStats names both reasons, Reason still the
// first (so Oldest is where the records delivered begin), and Missing
// covers the hole as well as the start.
func TestFollowOvertakenAfterNotReached(t *testing.T) {
	t.Parallel()
	r, err := Create(t.TempDir(), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rng := rand.New(rand.NewPCG(31, 32))
	recs := genRecords(rng, 150000, func(i int) int64 { return base + int64(i)*1000 })
	appendAll(t, r, recs)
	more := genRecords(rng, 30000, func(i int) int64 { return base + int64(len(recs)+i)*1000 })
	var pos Pos
	var got []Record
	st, err := r.Follow(context.Background(), base, recs[len(recs)-1].Time+1, &pos, true, func(rec Record) error {
		rec.Data = bytes.Clone(rec.Data)
		got = append(got, rec)
		if len(got) == 1 {
			// The writer laps the reader in the ring's oldest segments
			// while it is still in the first of them.
			appendAll(t, r, more)
			if err := r.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 {
		t.Fatal("nothing delivered")
	}
	first := int((got[0].Time - base) / 1000)
	hole, holeAt := 0, -1
	for i := range got {
		k := int((got[i].Time - base) / 1000)
		if i > 0 && k != int((got[i-1].Time-base)/1000)+1 {
			if holeAt >= 0 {
				t.Fatalf("a second hole at record %d", i)
			}
			holeAt, hole = i, k-int((got[i-1].Time-base)/1000)-1
		}
		sameRecords(t, "delivered", got[i:i+1], recs[k:k+1])
	}
	if holeAt < 0 || got[len(got)-1].Time != recs[len(recs)-1].Time {
		t.Fatalf("delivered %d records from %d without a hole or short of the end (last %d)", len(got), first, got[len(got)-1].Time)
	}
	want := []string{ReasonNotReached, ReasonOvertaken}
	if !st.Truncated || st.Reason != ReasonNotReached || !slices.Equal(st.Reasons, want) || st.Oldest != got[0].Time {
		t.Errorf("stats %+v, want truncated, reason %s, reasons %v, oldest %d (where the records begin)", st, ReasonNotReached, want, got[0].Time)
	}
	// The hole's part is the time range of the blocks lost, short of the
	// hole by the steps between blocks (1 µs here): allow 1%.
	if lack := int64(first)*1000 + int64(hole)*990; st.Missing < lack {
		t.Errorf("missing %d ns, want at least the start's %d ns and about the hole's %d ns", st.Missing, int64(first)*1000, int64(hole)*1000)
	}
}

// A follower overtaken in the blocks after the last it delivered, and
// lapped again before its next step, counts each lost stretch of the
// window once: Missing is the time the delivered records do not cover,
// never more than the window.
func TestFollowCountsLossOnce(t *testing.T) {
	t.Parallel()
	r, err := Create(t.TempDir(), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rng := rand.New(rand.NewPCG(33, 34))
	at := func(i int) int64 { return base + int64(i)*1000 }
	recs := genRecords(rng, 60000, at)
	appendAll(t, r, recs)
	more := genRecords(rng, 120000, func(i int) int64 { return at(len(recs) + i) })
	from, to := at(-10000), at(len(recs)+len(more))
	var pos Pos
	var got []Record
	step := func(onFirst func()) ReadStats {
		n := 0
		st, err := r.Follow(context.Background(), from, to, &pos, true, func(rec Record) error {
			if n++; n == 1 && onFirst != nil {
				onFirst()
			}
			rec.Data = bytes.Clone(rec.Data)
			got = append(got, rec)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	// The writer laps the whole ring while the first block is delivered:
	// every later block of the step is lost, and so are the next ones
	// before the second step.
	st1 := step(func() { appendAll(t, r, more[:100000]) })
	appendAll(t, r, more[100000:])
	st2 := step(nil)
	missing := st1.Missing + st2.Missing
	var lack int64 = got[0].Time - from
	for i := 1; i < len(got); i++ {
		lack += got[i].Time - got[i-1].Time - 1000
	}
	lack += to - 1000 - got[len(got)-1].Time
	// Lost blocks are counted by their time ranges, short of the hole by
	// the 1 µs steps between blocks.
	if missing > lack || missing < lack*99/100 || !slices.Contains(st1.Reasons, ReasonOvertaken) || !slices.Contains(st2.Reasons, ReasonOvertaken) {
		t.Errorf("missing %d + %d ns, want about the %d ns the %d records delivered leave uncovered of the %d ns window (reasons %v, %v)",
			st1.Missing, st2.Missing, lack, len(got), to-from, st1.Reasons, st2.Reasons)
	}
}

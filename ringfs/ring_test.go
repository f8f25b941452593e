package ringfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const testSize = MinSize

// testOpts keeps blocks small so that tests span many blocks and segments.
//
// The tests that write a ring's worth of records or more call t.Parallel:
// each has its own ring in its own directory, and under make check's race
// detector they are most of the package's time, which then runs on every
// core (go test runs ringfs, last in import-path order, alone at the end).
func testOpts() Options {
	return Options{Size: testSize, BlockSize: 64 << 10, FlushInterval: -1}
}

// payloads are random bytes that genRecords cuts records from, at random
// offsets: filling every record from the generator word by word took most
// of the ring tests' time under the race detector.
var payloads = func() []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 1<<16)
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	return b
}()

// genRecords makes n records with payloads that encode their index, so any
// mix-up shows, and times from timeAt.
func genRecords(rng *rand.Rand, n int, timeAt func(i int) int64) []Record {
	recs := make([]Record, n)
	for i := range recs {
		size := 8 + rng.IntN(1500)
		if rng.IntN(10) == 0 {
			size = 8 + rng.IntN(40)
		}
		d := bytes.Clone(payloads[rng.IntN(len(payloads)-size):][:size])
		binary.LittleEndian.PutUint64(d, uint64(i))
		orig := uint32(size)
		if rng.IntN(4) == 0 {
			orig += uint32(rng.IntN(9000)) // sliced
		}
		recs[i] = Record{Time: timeAt(i), Link: uint16(rng.IntN(3)), OrigLen: orig, Data: d}
	}
	return recs
}

func appendAll(t testing.TB, r *Ring, recs []Record) {
	t.Helper()
	for i, rec := range recs {
		if err := r.Append(rec); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

func readAll(t testing.TB, r *Ring, from, to int64) ([]Record, ReadStats) {
	t.Helper()
	var got []Record
	st, err := r.Read(context.Background(), from, to, func(rec Record) error {
		rec.Data = bytes.Clone(rec.Data)
		got = append(got, rec)
		return nil
	})
	if err != nil {
		t.Fatalf("read [%d, %d): %v", from, to, err)
	}
	return got, st
}

func want(recs []Record, from, to int64) []Record {
	var w []Record
	for _, r := range recs {
		if r.Time >= from && r.Time < to {
			w = append(w, r)
		}
	}
	return w
}

func sameRecords(t testing.TB, what string, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Time != w.Time || g.Link != w.Link || g.OrigLen != w.OrigLen || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("%s: record %d = {t %d link %d orig %d len %d}, want {t %d link %d orig %d len %d}",
				what, i, g.Time, g.Link, g.OrigLen, len(g.Data), w.Time, w.Link, w.OrigLen, len(w.Data))
		}
	}
}

const base = int64(1_700_000_000_000_000_000)

func TestRoundTripAndReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r, err := Create(dir, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	recs := genRecords(rng, 20000, func(i int) int64 { return base + int64(i)*1_000_000 })
	appendAll(t, r, recs)
	end := recs[len(recs)-1].Time + 1

	got, st := readAll(t, r, base, end)
	sameRecords(t, "whole ring before close", got, recs)
	if st.Packets != uint64(len(recs)) || st.Truncated || st.Corrupt != 0 {
		t.Errorf("stats %+v", st)
	}
	from, to := base+5_000_000_123, base+7_500_000_000
	got, _ = readAll(t, r, from, to)
	sameRecords(t, "sub-window", got, want(recs, from, to))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	r, err = Open(dir, Options{FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, _ = readAll(t, r, base, end)
	sameRecords(t, "whole ring after reopen", got, recs)
	got, _ = readAll(t, r, from, to)
	sameRecords(t, "sub-window after reopen", got, want(recs, from, to))
	got, _ = readAll(t, r, from, from)
	if len(got) != 0 {
		t.Errorf("empty window returned %d records", len(got))
	}

	in, err := r.Info()
	if err != nil {
		t.Fatal(err)
	}
	var bytesIn uint64
	for _, rec := range recs {
		bytesIn += uint64(len(rec.Data))
	}
	if in.Packets != uint64(len(recs)) || in.Bytes != bytesIn || in.Oldest != base || in.Newest != end-1 {
		t.Errorf("info = %+v, want %d packets, %d bytes, oldest %d newest %d", in, len(recs), bytesIn, base, end-1)
	}
	// Appending after reopen continues after the old data.
	more := genRecords(rng, 500, func(i int) int64 { return end + int64(i) })
	appendAll(t, r, more)
	got, _ = readAll(t, r, base, end+1000)
	sameRecords(t, "after reopen and append", got, append(recs[:len(recs):len(recs)], more...))
}

func TestWrapKeepsNewestSuffix(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r, err := Create(dir, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	// About 2.5 times the ring.
	recs := genRecords(rng, 210000, func(i int) int64 { return base + int64(i)*1000 })
	appendAll(t, r, recs)
	got, st := readAll(t, r, base, 1<<62)
	if len(got) == 0 || len(got) > len(recs)/2 {
		t.Fatalf("after wrapping, %d of %d records remain", len(got), len(recs))
	}
	first := int(binary.LittleEndian.Uint64(got[0].Data))
	sameRecords(t, "surviving suffix", got, recs[first:])
	// The window's start was overwritten before the read began: that is a
	// loss the read must report, with how far back the ring reached.
	if !st.Truncated || st.Reason != ReasonNotReached || st.Oldest != got[0].Time ||
		st.Missing != got[0].Time-base || st.Corrupt != 0 {
		t.Fatalf("stats %+v, want truncated (%s) at oldest %d, missing %d", st, ReasonNotReached, got[0].Time, got[0].Time-base)
	}
	// A window the ring still holds whole is not truncated.
	if _, st := readAll(t, r, got[0].Time, 1<<62); st.Truncated {
		t.Errorf("window from the oldest record: stats %+v", st)
	}
	// At most one segment (plus the block being filled) may be lost to wrapping.
	in, _ := r.Info()
	if in.Used < testSize*13/16 {
		t.Errorf("ring holds %d bytes of blocks, want most of %d", in.Used, testSize)
	}
}

func TestClockJumps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r, err := Create(dir, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	// Time runs forward with jumps back and forth, as on a Pi whose clock is
	// set by NTP late, and with slightly out-of-order neighbours.
	now := base
	times := make([]int64, 40000)
	for i := range times {
		switch {
		case i%7000 == 6999:
			now -= int64(rng.IntN(3600)) * 1e9 // back up to an hour
		case i%9000 == 8999:
			now += int64(rng.IntN(86400*365)) * 1e9 // forward up to a year
		case i%13 == 0:
			now -= int64(rng.IntN(1000)) // jitter
		default:
			now += int64(rng.IntN(2_000_000))
		}
		times[i] = now
	}
	recs := genRecords(rng, len(times), func(i int) int64 { return times[i] })
	appendAll(t, r, recs)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	ro, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	windows := 200
	if testing.Short() {
		windows = 40 // make check: the race detector makes each window slow
	}
	for q := range windows {
		a := times[rng.IntN(len(times))] + int64(rng.IntN(2000)) - 1000
		b := a + int64(rng.IntN(int(100e9)))
		if q%10 == 0 {
			b = a + int64(rng.IntN(3600e9))
		}
		w := want(recs, a, b)
		got, _ := readAll(t, r, a, b)
		sameRecords(t, fmt.Sprintf("window %d [%d, %d)", q, a, b), got, w)
		got, _ = readAll(t, ro, a, b)
		sameRecords(t, fmt.Sprintf("read-only window %d [%d, %d)", q, a, b), got, w)
	}
}

// TestIndexReadsOnlyOverlappingBlocks checks that the time index, not a scan,
// picks the blocks: a read touches exactly the blocks whose [min, max]
// overlaps the window, with and without clock jumps.
func TestIndexReadsOnlyOverlappingBlocks(t *testing.T) {
	t.Parallel()
	for _, jumps := range []bool{false, true} {
		r, err := Create(t.TempDir(), testOpts())
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(21, 22))
		recs := genRecords(rng, 60000, func(i int) int64 {
			if jumps && i%10000 > 7000 {
				return base - int64(i)*1000 // the clock went back for a while
			}
			return base + int64(i)*1000
		})
		appendAll(t, r, recs)
		vs, err := r.snapshot()
		if err != nil {
			t.Fatal(err)
		}
		nblocks := 0
		for _, v := range vs {
			nblocks += len(v.entries)
		}
		for q := range 50 {
			from := recs[rng.IntN(len(recs))].Time
			to := from + int64(rng.IntN(3_000_000))
			overlap := 0
			for _, v := range vs {
				for _, e := range v.entries {
					if e.tmax >= from && e.tmin < to {
						overlap++
					}
				}
			}
			got, st := readAll(t, r, from, to)
			sameRecords(t, fmt.Sprintf("jumps=%v window %d", jumps, q), got, want(recs, from, to))
			if st.Blocks != overlap {
				t.Fatalf("jumps=%v window %d: read %d blocks of %d, but only %d overlap the window", jumps, q, st.Blocks, nblocks, overlap)
			}
		}
		if nblocks < 500 {
			t.Fatalf("only %d blocks: the test needs many", nblocks)
		}
		r.Close()
	}
}

// maxAgeRing is a ring with a 10 s max_age holding 30 s of records, one
// every 10 ms, from the generator seeded with seed and seed+1.
func maxAgeRing(t *testing.T, seed uint64) (dir string, o Options, r *Ring, recs []Record) {
	t.Helper()
	dir = t.TempDir()
	o = testOpts()
	o.MaxAge = 10 * time.Second
	r, err := Create(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, seed+1))
	recs = genRecords(rng, 3000, func(i int) int64 { return base + int64(i)*int64(10*time.Millisecond) })
	appendAll(t, r, recs)
	return dir, o, r, recs
}

func TestMaxAge(t *testing.T) {
	dir, _, r, recs := maxAgeRing(t, 7)
	newest := recs[len(recs)-1].Time
	cut := newest - int64(10*time.Second)
	got, st := readAll(t, r, 0, 1<<62)
	sameRecords(t, "max age window", got, want(recs, cut, 1<<62))
	if !st.Truncated || st.Reason != ReasonMaxAge || st.Oldest != cut {
		t.Errorf("window before max_age's limit: stats %+v, want truncated (%s) at %d", st, ReasonMaxAge, cut)
	}
	if _, st := readAll(t, r, cut, 1<<62); st.Truncated {
		t.Errorf("window from max_age's limit: stats %+v", st)
	}
	in, err := r.Info()
	if err != nil {
		t.Fatal(err)
	}
	if in.Oldest < cut || in.Packets >= uint64(len(recs)) || in.MaxAge != 10*time.Second {
		t.Errorf("info %+v: oldest %d before cut %d or expired packets counted", in, in.Oldest, cut)
	}
	r.Close()
	// The limit is stored in the ring: a read-only opener applies it too,
	// and may only make it stricter.
	ro, err := Open(dir, Options{ReadOnly: true, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = readAll(t, ro, 0, 1<<62)
	sameRecords(t, "read-only max age window", got, want(recs, cut, 1<<62))
	ro.Close()
	ro, err = Open(dir, Options{ReadOnly: true, MaxAge: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	got, _ = readAll(t, ro, 0, 1<<62)
	sameRecords(t, "stricter max age", got, want(recs, newest-int64(5*time.Second), 1<<62))
}

// TestMaxAgeConfigWins: the writer's MaxAge applies whatever ring.json
// (on the untrusted disk) stores, 0 included: the stored 10 s, or a planted
// max_age_ns of 1, hides nothing from a writer opened with MaxAge 0.
func TestMaxAgeConfigWins(t *testing.T) {
	dir, o, r, recs := maxAgeRing(t, 9)
	r.Close()
	for _, plant := range []bool{false, true} {
		if plant {
			p := filepath.Join(dir, "ring.json")
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			m["max_age_ns"] = json.RawMessage("1")
			b, _ = json.Marshal(m)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		o.MaxAge = 0
		w, err := Open(dir, o)
		if err != nil {
			t.Fatal(err)
		}
		got, st := readAll(t, w, 0, 1<<62)
		sameRecords(t, fmt.Sprintf("max age 0 (planted %v)", plant), got, recs)
		if st.Reason == ReasonMaxAge {
			t.Errorf("planted %v: stats %+v, want nothing hidden by max_age", plant, st)
		}
		if in, err := w.Info(); err != nil || in.MaxAge != 0 {
			t.Errorf("planted %v: info max age %v, %v; want 0", plant, in.MaxAge, err)
		}
		w.Close()
	}
}

func TestDropsAndLinks(t *testing.T) {
	dir := t.TempDir()
	r, err := Create(dir, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	eth, err := r.AddLink(Link{Name: "eth0", LinkType: 1, SnapLen: 65535})
	if err != nil {
		t.Fatal(err)
	}
	wl, _ := r.AddLink(Link{Name: "wlan0", LinkType: 127})
	again, _ := r.AddLink(Link{Name: "eth0", LinkType: 1, SnapLen: 65535})
	if eth != 0 || wl != 1 || again != 0 {
		t.Fatalf("link ids %d %d %d, want 0 1 0", eth, wl, again)
	}
	if err := r.Append(Record{Time: base, Data: []byte{1, 2, 3}, OrigLen: 3}); err != nil {
		t.Fatal(err)
	}
	r.AddDrops(eth, base+10, 5)
	r.AddDrops(wl, base+20, 7)
	r.AddDrops(eth, base+100, 1000)
	_, st := readAll(t, r, base, base+50)
	if st.Drops != 12 || st.Packets != 1 {
		t.Errorf("window stats %+v, want 12 drops and 1 packet", st)
	}
	r.Close()
	ro, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	in, _ := ro.Info()
	if in.Drops != 1012 || len(in.Links) != 2 || in.Links[1].Name != "wlan0" || in.Links[1].LinkType != 127 {
		t.Errorf("info %+v", in)
	}
	if _, err := ro.AddLink(Link{Name: "x"}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("AddLink on a read-only ring: %v", err)
	}
}

// segmentOf finds the segment file and data offset of the k-th block (in
// append order) of the ring.
func blockPos(t *testing.T, r *Ring, k int) (string, int64, entry) {
	t.Helper()
	vs, err := r.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if k < len(v.entries) {
			return r.meta.segPath(r.dir, v.slot), v.entries[k].off, v.entries[k]
		}
		k -= len(v.entries)
	}
	t.Fatal("no such block")
	return "", 0, entry{}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	f.ReadAt(b, off)
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestTornBlocksNeverReturned(t *testing.T) {
	dir := t.TempDir()
	r, err := Create(dir, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 10))
	recs := genRecords(rng, 5000, func(i int) int64 { return base + int64(i) })
	appendAll(t, r, recs)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	// Corrupt one payload byte of block 3 and the header of block 20.
	p3, off3, e3 := blockPos(t, r, 3)
	p20, off20, e20 := blockPos(t, r, 20)
	r.Close()
	flipByte(t, p3, off3+int64(blockHdrSize)+int64(rng.IntN(int(e3.blockLen)/2)))
	flipByte(t, p20, off20+30)

	r, err = Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, st := readAll(t, r, base, 1<<62)
	if st.Corrupt != 2 || st.Truncated {
		t.Errorf("stats %+v, want 2 corrupt blocks reported", st)
	}
	// What comes back is exactly the input minus the two blocks' records.
	lost := map[int64]bool{}
	for _, e := range []entry{e3, e20} {
		for _, rec := range recs {
			if rec.Time >= e.tmin && rec.Time <= e.tmax {
				lost[rec.Time] = true
			}
		}
	}
	var w []Record
	for _, rec := range recs {
		if !lost[rec.Time] {
			w = append(w, rec)
		}
	}
	sameRecords(t, "records around corrupt blocks", got, w)
}

func TestCorruptIndexRecoveredFromHeaders(t *testing.T) {
	dir := t.TempDir()
	r, err := Create(dir, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	recs := genRecords(rng, 3000, func(i int) int64 { return base + int64(i) })
	appendAll(t, r, recs)
	r.Close()
	// Break the index entry of block 2 of the first segment: the blocks after
	// it must still be found by walking the block headers.
	m, _ := readMeta(dir)
	flipByte(t, m.segPath(dir, 0), pageSize+2*indexEntrySize+20)
	ro, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	got, st := readAll(t, ro, 0, 1<<62)
	sameRecords(t, "after index corruption", got, recs)
	if st.Corrupt != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestReaderOvertakenByWriter(t *testing.T) {
	t.Parallel()
	for _, ro := range []bool{false, true} {
		t.Run(fmt.Sprintf("readonly=%v", ro), func(t *testing.T) {
			dir := t.TempDir()
			r, err := Create(dir, testOpts())
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			rng := rand.New(rand.NewPCG(13, 14))
			// The ring holds about 90000 of these records: 240000 lap the
			// reader twice over.
			n := 240000
			if testing.Short() {
				n = 120000 // make check: the race detector makes each record slow
			}
			recs := genRecords(rng, n, func(i int) int64 { return base + int64(i)*1000 })
			appendAll(t, r, recs[:60000])
			r.Flush()
			reader := r
			if ro {
				reader, err = Open(dir, Options{ReadOnly: true})
				if err != nil {
					t.Fatal(err)
				}
				defer reader.Close()
			}
			var got []Record
			var once sync.Once
			st, err := reader.Read(context.Background(), 0, 1<<62, func(rec Record) error {
				got = append(got, Record{rec.Time, rec.Link, rec.OrigLen, bytes.Clone(rec.Data)})
				// After the first record, let the writer lap the ring.
				once.Do(func() {
					appendAll(t, r, recs[60000:])
					r.Flush()
				})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// The read begins before the ring's oldest record, so it is
			// truncated anyway: the writer's lap must be among the reasons.
			if !st.Truncated || !slices.Contains(st.Reasons, ReasonOvertaken) {
				t.Fatalf("reader overtaken by the writer did not report it (%+v)", st)
			}
			// Everything delivered is input, in order, without duplicates.
			last := -1
			for i, g := range got {
				k := int(binary.LittleEndian.Uint64(g.Data))
				if k <= last || k >= len(recs) {
					t.Fatalf("record %d is input %d after input %d", i, k, last)
				}
				sameRecords(t, "delivered record", []Record{g}, []Record{recs[k]})
				last = k
			}
		})
	}
}

func TestConcurrentReadersWhileWriting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r, err := Create(dir, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rng := rand.New(rand.NewPCG(15, 16))
	n := 60000
	if testing.Short() {
		n = 20000 // make check: four readers re-read the ring while each record is written
	}
	recs := genRecords(rng, n, func(i int) int64 { return base + int64(i)*1000 })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errc := make(chan error, 5)
	// Two goroutines share the writer, two share one read-only ring.
	ro, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reader := r
			if g >= 2 {
				reader = ro
			}
			for ctx.Err() == nil {
				last := -1
				_, err := reader.Read(ctx, base, base+int64(len(recs))*1000, func(rec Record) error {
					k := int(binary.LittleEndian.Uint64(rec.Data))
					if k <= last || !bytes.Equal(rec.Data, recs[k].Data) || rec.Time != recs[k].Time {
						return fmt.Errorf("reader %d: bad record: input %d after %d", g, k, last)
					}
					last = k
					return nil
				})
				if err != nil && ctx.Err() == nil {
					errc <- err
					return
				}
			}
		}()
	}
	for i, rec := range recs {
		if err := r.Append(rec); err != nil {
			t.Fatal(err)
		}
		if i%5000 == 0 {
			r.Flush()
		}
	}
	cancel()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	r.Flush()
	got, _ := readAll(t, r, base, 1<<62)
	sameRecords(t, "writer's view at the end", got, recs)
	got, _ = readAll(t, ro, base, 1<<62)
	sameRecords(t, "read-only view at the end", got, recs)
}

func TestBadInputs(t *testing.T) {
	dir := t.TempDir()
	if _, err := Create(filepath.Join(dir, "small"), Options{Size: MinSize - 1}); err == nil || !strings.Contains(err.Error(), "too small") {
		t.Errorf("Create with a small size: %v", err)
	}
	if _, err := Create(filepath.Join(dir, "bs"), Options{Size: MinSize, BlockSize: 5000}); err == nil || !strings.Contains(err.Error(), "block size") {
		t.Errorf("Create with a bad block size: %v", err)
	}
	plain := filepath.Join(dir, "plain")
	os.Mkdir(plain, 0o755)
	os.WriteFile(filepath.Join(plain, "x"), []byte("hello"), 0o644)
	if _, err := Open(plain, Options{}); !errors.Is(err, ErrNotRing) {
		t.Errorf("Open of a plain directory: %v, want ErrNotRing", err)
	}
	if _, err := Open(filepath.Join(dir, "missing"), Options{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing directory: %v", err)
	}
	os.WriteFile(filepath.Join(plain, metaName), []byte("{not json"), 0o644)
	if _, err := Open(plain, Options{}); !errors.Is(err, ErrNotRing) || !strings.Contains(err.Error(), metaName) {
		t.Errorf("Open with a corrupt %s: %v", metaName, err)
	}

	rd := filepath.Join(dir, "ring")
	r, err := Create(rd, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(rd, testOpts()); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create over an existing ring: %v", err)
	}
	r.Append(Record{Time: base, Data: []byte("keep me"), OrigLen: 7})
	if _, err := r.Read(context.Background(), 10, 5, func(Record) error { return nil }); !errors.Is(err, ErrBadWindow) {
		t.Errorf("Read with from > to: %v", err)
	}
	if err := r.Append(Record{Time: base, Data: make([]byte, 64<<10)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Append of a record larger than a block: %v", err)
	}
	got, _ := readAll(t, r, 0, 1<<62)
	if len(got) != 1 || string(got[0].Data) != "keep me" {
		t.Errorf("bad inputs lost data: %v", got)
	}
	r.Close()
	if err := r.Append(Record{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	// A segment file cut short is reported, not read past.
	os.Truncate(filepath.Join(rd, "seg-000003"), 1000)
	if _, err := Open(rd, Options{ReadOnly: true}); !errors.Is(err, ErrNotRing) || !strings.Contains(err.Error(), "seg-000003") {
		t.Errorf("Open with a short segment: %v", err)
	}
}

func TestAppendDoesNotAllocate(t *testing.T) {
	for _, encrypt := range []bool{false, true} {
		o := testOpts()
		o.Encrypt, o.KeyDir = encrypt, t.TempDir()
		r, err := Create(t.TempDir(), o)
		if err != nil {
			t.Fatal(err)
		}
		d := make([]byte, 64)
		i := int64(0)
		// Counted in every goroutine: the sealing ones too.
		allocs := testing.AllocsPerRun(20000, func() {
			i++
			if err := r.Append(Record{Time: base + i, OrigLen: 64, Data: d}); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > 0.01 {
			t.Errorf("encrypted %v: Append allocates %.3f times a packet", encrypt, allocs)
		}
		r.Close()
	}
}

func benchmarkAppend(b *testing.B, size int, encrypt bool) {
	r, err := Create(b.TempDir(), Options{Size: 1 << 30, Encrypt: encrypt, KeyDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	d := make([]byte, size)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := range b.N {
		if err := r.Append(Record{Time: base + int64(i), OrigLen: uint32(size), Data: d}); err != nil {
			b.Fatal(err)
		}
	}
	if err := r.Flush(); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkAppend64(b *testing.B)   { benchmarkAppend(b, 64, false) }
func BenchmarkAppend1500(b *testing.B) { benchmarkAppend(b, 1500, false) }

// The same into an encrypted ring: the ratio to the clear ring is the
// cost of sealing on the write path.
func BenchmarkAppendEncrypted64(b *testing.B)   { benchmarkAppend(b, 64, true) }
func BenchmarkAppendEncrypted1500(b *testing.B) { benchmarkAppend(b, 1500, true) }

// encodeBlock builds a valid block from records the way the writer does.
func encodeBlock(recs []Record, drops []uint64, gaps ...Gap) []byte {
	size := blockHdrSize
	for _, r := range recs {
		size += recHdrSize + len(r.Data)
	}
	size += len(drops)*(recHdrSize+8) + len(gaps)*(recHdrSize+gapDataLen)
	b := make([]byte, (size+pageSize-1)/pageSize*pageSize)
	h := blockHeader{gen: 3, seq: 42}
	off := blockHdrSize
	add := func(kind uint16, r *Record) {
		off += putRecord(b[off:], kind, r)
		if h.nrec == 0 {
			h.tmin, h.tmax = r.Time, r.Time
		}
		h.tmin, h.tmax = min(h.tmin, r.Time), max(h.tmax, r.Time)
		h.nrec++
	}
	for i := range recs {
		add(kindPacket, &recs[i])
		h.packets++
		h.bytes += uint64(len(recs[i].Data))
	}
	for _, n := range drops {
		var d [8]byte
		binary.LittleEndian.PutUint64(d[:], n)
		add(kindDrops, &Record{Time: base, Data: d[:]})
		h.drops += n
	}
	for _, g := range gaps {
		var d [gapDataLen]byte
		binary.LittleEndian.PutUint64(d[:], uint64(g.From))
		binary.LittleEndian.PutUint64(d[8:], uint64(g.To))
		add(kindGap, &Record{Time: g.From, Link: g.Link, Data: d[:]})
		h.flags |= flagGaps
	}
	h.payloadLen = uint32(off - blockHdrSize)
	h.blockLen = uint32(len(b))
	putBlockHeader(b, &h, payloadCRC(b, h.payloadLen))
	return b
}

// FuzzDecodeBlock feeds arbitrary bytes to the block decoder: it must never
// panic, and whatever it accepts must be internally consistent (records
// re-encode to the same payload, counts match the header).
func FuzzDecodeBlock(f *testing.F) {
	rng := rand.New(rand.NewPCG(17, 18))
	recs := genRecords(rng, 20, func(i int) int64 { return base + int64(i) })
	good := encodeBlock(recs, []uint64{7})
	f.Add(good)
	f.Add(encodeBlock(nil, nil))
	f.Add(encodeBlock(recs[:1], nil))
	f.Add(encodeBlock(recs[:3], []uint64{2}, Gap{Link: 1, From: base + 1, To: base + 9}))
	f.Add(good[:blockHdrSize])
	f.Add(good[:len(good)/2])
	torn := bytes.Clone(good)
	torn[blockHdrSize+100] ^= 1
	f.Add(torn)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var got []Record
		var kinds []uint16
		h, err := decodeBlock(b, func(kind uint16, r Record) error {
			got = append(got, r)
			kinds = append(kinds, kind)
			return nil
		})
		if err != nil {
			if len(got) != 0 {
				t.Fatalf("decoder returned %d records of a block it rejected: %v", len(got), err)
			}
			return
		}
		if uint32(len(got)) != h.nrec {
			t.Fatalf("decoded %d records, header says %d", len(got), h.nrec)
		}
		var re []byte
		for i, r := range got {
			if r.Time < h.tmin || r.Time > h.tmax {
				t.Fatalf("record %d time %d outside [%d, %d]", i, r.Time, h.tmin, h.tmax)
			}
			tmp := make([]byte, recHdrSize+len(r.Data))
			putRecord(tmp, kinds[i], &r)
			re = append(re, tmp...)
		}
		if !bytes.Equal(re, b[blockHdrSize:blockHdrSize+int(h.payloadLen)]) {
			t.Fatal("accepted records do not re-encode to the payload")
		}
	})
}

func TestDecodeBlockRejectsEveryFlippedByte(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	recs := genRecords(rng, 5, func(i int) int64 { return base + int64(i) })
	good := encodeBlock(recs, nil, Gap{Link: 2, From: base + 2})
	if _, err := decodeBlock(good, nil); err != nil {
		t.Fatalf("good block rejected: %v", err)
	}
	h, _ := parseBlockHeader(good)
	for i := range blockHdrSize + int(h.payloadLen) {
		b := bytes.Clone(good)
		b[i] ^= 0x01
		if _, err := decodeBlock(b, func(uint16, Record) error {
			t.Fatalf("flipped byte %d: a record was returned", i)
			return nil
		}); err == nil {
			t.Fatalf("flipped byte %d: block accepted", i)
		}
	}
}

// The identity survives a reopen and a read-only open, and a ring created
// again in the same place gets a new one.
func TestRingID(t *testing.T) {
	dir := t.TempDir()
	r, err := Create(dir, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	id := r.ID()
	if id == 0 {
		t.Fatal("new ring has ID 0")
	}
	if _, err := r.AddLink(Link{Name: "eth0"}); err != nil {
		t.Fatal(err)
	}
	if got := r.ID(); got != id {
		t.Errorf("ID after AddLink %x, want %x", got, id)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := ro.ID(); got != id {
		t.Errorf("ID after reopening %x, want %x", got, id)
	}
	ro.Close()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	again, err := Create(dir, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.ID() == id {
		t.Errorf("a ring created again in the same place kept ID %x", id)
	}
}

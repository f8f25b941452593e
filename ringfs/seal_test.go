package ringfs

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// sealedOpts are testOpts for an encrypted ring whose key is kept in keyDir.
func sealedOpts(keyDir string) Options {
	o := testOpts()
	o.Encrypt, o.KeyDir = true, keyDir
	return o
}

// marked makes records whose payloads all carry mark, so that a search of
// the disk for it tells whether any payload is there in clear.
func marked(rng *rand.Rand, n int, mark []byte) []Record {
	recs := genRecords(rng, n, func(i int) int64 { return base + int64(i)*1000 })
	for i := range recs {
		if len(recs[i].Data) >= 8+len(mark) {
			copy(recs[i].Data[8:], mark)
		}
	}
	return recs
}

// diskHolds says whether any file of the ring's directory holds one of bs.
// It reads through one buffer: under the race detector, reading each
// segment whole into fresh memory cost most of TestSealedRing's time.
func diskHolds(t *testing.T, dir string, bs ...[]byte) bool {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	overlap := 0 // what a match can straddle between two reads
	for _, b := range bs {
		overlap = max(overlap, len(b)-1)
	}
	buf := make([]byte, 1<<20+overlap)
	for _, e := range ents {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		held := 0
		for {
			n, err := f.Read(buf[held:])
			held += n
			for _, b := range bs {
				if bytes.Contains(buf[:held], b) {
					f.Close()
					return true
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			held = copy(buf, buf[held-min(held, overlap):held])
		}
		f.Close()
	}
	return false
}

// TestSealedRing: an encrypted ring returns exactly what a clear one does
// for the same appends (on the writer, reopened and read-only), its disk
// holds none of the payload while the clear ring's does, and its key is
// kept in KeyDir, not beside the ring.
func TestSealedRing(t *testing.T) {
	t.Parallel()
	keys := t.TempDir()
	rng := rand.New(rand.NewPCG(41, 42))
	mark := []byte("presscap-payload-marker-7f3a9c1e")
	recs := marked(rng, 8000, mark)
	gap := Gap{Link: 1, From: base + 100_000, To: base + 200_000}
	clearDir, sealedDir := filepath.Join(t.TempDir(), "clear"), filepath.Join(t.TempDir(), "sealed")
	var got [2][]Record
	var gaps [2][]Gap
	for i, c := range []struct {
		dir string
		o   Options
	}{{clearDir, testOpts()}, {sealedDir, sealedOpts(keys)}} {
		r, err := Create(c.dir, c.o)
		if err != nil {
			t.Fatal(err)
		}
		appendAll(t, r, recs[:5000])
		if err := r.AddGap(gap); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		// A second writer session: a new epoch, the same key.
		c.o.Encrypt = false
		if r, err = Open(c.dir, c.o); err != nil {
			t.Fatal(err)
		}
		appendAll(t, r, recs[5000:])
		from, to := base+1_000_000, base+7_000_000
		w, _ := readAll(t, r, from, to)
		sameRecords(t, "writer", w, want(recs, from, to))
		r.Close()
		c.o.ReadOnly = true
		ro, err := Open(c.dir, c.o)
		if err != nil {
			t.Fatal(err)
		}
		var st ReadStats
		got[i], st = readAll(t, ro, base, base+1<<40)
		if st.Corrupt != 0 || st.Packets != uint64(len(recs)) {
			t.Errorf("ring %d: stats %+v", i, st)
		}
		gaps[i] = gapsIn(t, ro, base, base+1<<40)
		in, _ := ro.Info()
		if in.Encrypted != (i == 1) || in.Packets != uint64(len(recs)) {
			t.Errorf("ring %d: info %+v", i, in)
		}
		ro.Close()
	}
	sameRecords(t, "encrypted ring against the clear ring", got[1], got[0])
	sameRecords(t, "encrypted ring against the input", got[1], recs)
	if len(gaps[1]) != 1 || gaps[1][0] != gap || len(gaps[0]) != 1 {
		t.Errorf("gaps: clear %+v, encrypted %+v, want %+v", gaps[0], gaps[1], gap)
	}
	if !diskHolds(t, clearDir, mark) {
		t.Fatal("the clear ring's disk lacks the payload marker: the search finds nothing")
	}
	if diskHolds(t, sealedDir, mark) {
		t.Error("the encrypted ring's disk holds packet payload in clear")
	}
	// Any 16 bytes of a payload, not only the marker.
	var pieces [][]byte
	for _, rec := range recs[:50] {
		if len(rec.Data) >= 24+len(mark) {
			pieces = append(pieces, rec.Data[8+len(mark):24+len(mark)])
		}
	}
	if !diskHolds(t, clearDir, pieces...) {
		t.Fatal("the clear ring's disk lacks the payload pieces")
	}
	if diskHolds(t, sealedDir, pieces...) {
		t.Fatal("payload bytes are on the encrypted ring's disk")
	}
	m, err := readMeta(sealedDir)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := os.ReadFile(KeyPath(keys, m.RingID))
	if err != nil {
		t.Fatalf("key file: %v", err)
	}
	var kf keyFile
	json.Unmarshal(kb, &kf)
	if kf.Epoch != 2 || diskHolds(t, sealedDir, kf.Key) {
		t.Errorf("key file epoch %d (want 2 after two writer sessions), or the key is on the ring's disk", kf.Epoch)
	}
	if st, _ := os.Stat(KeyPath(keys, m.RingID)); st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
}

// TestSealedKeyErrors: without its key, or with another ring's, an
// encrypted ring does not open (a clear error naming the key file) and
// returns no packet; a creation that cannot keep its key leaves nothing.
func TestSealedKeyErrors(t *testing.T) {
	keys, other := t.TempDir(), t.TempDir()
	dir := filepath.Join(t.TempDir(), "ring")
	r, err := Create(dir, sealedOpts(keys))
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, r, genRecords(rand.New(rand.NewPCG(43, 44)), 100, func(i int) int64 { return base + int64(i) }))
	id := r.ID()
	r.Close()
	// another ring's key under this ring's name
	r2, err := Create(filepath.Join(t.TempDir(), "ring2"), sealedOpts(other))
	if err != nil {
		t.Fatal(err)
	}
	id2 := r2.ID()
	r2.Close()
	wrong := t.TempDir()
	kb, _ := os.ReadFile(KeyPath(other, id2))
	var kf keyFile
	json.Unmarshal(kb, &kf)
	kf.RingID = strings.TrimPrefix(filepath.Base(KeyPath(wrong, id)), "ring-")[:16]
	kb, _ = json.Marshal(kf)
	os.WriteFile(KeyPath(wrong, id), kb, 0o600)
	garbled := t.TempDir()
	os.WriteFile(KeyPath(garbled, id), []byte("not json"), 0o600)
	for _, c := range []struct {
		name, keyDir string
		want         error
		text         string
	}{
		{"no key directory", "", ErrNoKey, "no key directory"},
		{"no key file", t.TempDir(), ErrNoKey, "ring-"},
		{"another ring's key", wrong, ErrWrongKey, KeyPath(wrong, id)},
		{"garbled key file", garbled, ErrWrongKey, KeyPath(garbled, id)},
	} {
		for _, ro := range []bool{true, false} {
			r, err := Open(dir, Options{ReadOnly: ro, KeyDir: c.keyDir, FlushInterval: -1})
			if err == nil {
				r.Close()
				t.Errorf("%s (read-only %v): opened", c.name, ro)
				continue
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) || !strings.Contains(err.Error(), "encrypted") {
				t.Errorf("%s (read-only %v): %v, want %v naming %q", c.name, ro, err, c.want, c.text)
			}
		}
	}
	// The ring is untouched: with its key, everything is there.
	r, err = Open(dir, Options{ReadOnly: true, KeyDir: keys})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := readAll(t, r, base, base+1000); len(got) != 100 {
		t.Errorf("with the key after the failed opens: %d packets, want 100", len(got))
	}
	r.Close()
	// Create with Encrypt and nowhere to keep the key makes nothing.
	nowhere := filepath.Join(t.TempDir(), "ring")
	if _, err := Create(nowhere, Options{Size: testSize, Encrypt: true}); err == nil || !strings.Contains(err.Error(), "KeyDir") {
		t.Errorf("create encrypted without a key directory: %v", err)
	}
	if _, err := os.Stat(nowhere); err == nil {
		t.Error("a failed encrypted creation left its directory")
	}
}

// reseal gives a block whose bytes were changed a valid checksum again, so
// that only the seal can tell.
func reseal(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hb := make([]byte, blockHdrSize)
	f.ReadAt(hb, off)
	h, err := parseBlockHeader(hb)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, h.blockLen)
	f.ReadAt(b, off)
	crc := crc32.Update(payloadCRC(b, h.payloadLen), castagnoli, b[8:blockHdrSize])
	binary.LittleEndian.PutUint32(b[4:], crc)
	f.WriteAt(b[:8], off)
}

// TestSealedCorruptBlocks: in an encrypted ring a torn block is skipped
// and counted like in a clear one, and so is a block whose ciphertext or
// header was altered with its checksum made good again (only the seal
// tells), or which was copied to another place: no record of them comes
// back, everything else does.
func TestSealedCorruptBlocks(t *testing.T) {
	keys, dir := t.TempDir(), t.TempDir()
	r, err := Create(dir, sealedOpts(keys))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(45, 46))
	recs := genRecords(rng, 5000, func(i int) int64 { return base + int64(i) })
	appendAll(t, r, recs)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	p3, off3, e3 := blockPos(t, r, 3)     // torn: checksum fails
	p8, off8, e8 := blockPos(t, r, 8)     // ciphertext altered, checksum made good
	p12, off12, e12 := blockPos(t, r, 12) // header field (bytes) altered, checksum made good
	p15, off15, e15 := blockPos(t, r, 15) // replaced by block 14's bytes, header fixed up
	_, off14, e14 := blockPos(t, r, 14)
	r.Close()
	flipByte(t, p3, off3+int64(blockHdrSize)+int64(e3.blockLen)/3)
	flipByte(t, p8, off8+int64(blockHdrSize)+int64(e8.blockLen)/3)
	reseal(t, p8, off8)
	flipByte(t, p12, off12+56) // the byte count: no structural check sees it
	reseal(t, p12, off12)
	// Block 14 moved into block 15's place: same length needed.
	if e14.blockLen == e15.blockLen {
		f, _ := os.OpenFile(p15, os.O_RDWR, 0)
		b := make([]byte, e14.blockLen)
		f.ReadAt(b, off14)
		binary.LittleEndian.PutUint64(b[16:], binary.LittleEndian.Uint64(b[16:])+1) // seq 15
		f.WriteAt(b, off15)
		f.Close()
		reseal(t, p15, off15)
	} else {
		t.Logf("blocks 14 and 15 differ in length: the move is not tried")
		e15 = entry{tmin: -1, tmax: -2}
	}
	ro, err := Open(dir, Options{ReadOnly: true, KeyDir: keys})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	got, st := readAll(t, ro, base, 1<<62)
	bad := []entry{e3, e8, e12}
	if e15.tmin >= 0 {
		bad = append(bad, e15)
	}
	if st.Corrupt != len(bad) || st.Truncated {
		t.Errorf("stats %+v, want %d corrupt blocks", st, len(bad))
	}
	var w []Record
	for _, rec := range recs {
		lost := false
		for _, e := range bad {
			lost = lost || rec.Time >= e.tmin && rec.Time <= e.tmax
		}
		if !lost {
			w = append(w, rec)
		}
	}
	sameRecords(t, "records around corrupt sealed blocks", got, w)
}

// TestSealedWritersNeverShareAnEpoch: writers of one encrypted ring opened
// at the same time (which the disk cannot prevent) each get their own
// epoch, so no nonce is used twice even then.
func TestSealedWritersNeverShareAnEpoch(t *testing.T) {
	keys, dir := t.TempDir(), t.TempDir()
	r, err := Create(dir, sealedOpts(keys))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	const n = 8
	rings := make([]*Ring, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rings[i], errs[i] = Open(dir, Options{KeyDir: keys, FlushInterval: -1})
		}()
	}
	wg.Wait()
	seen := map[uint32]bool{}
	for i, r := range rings {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if seen[r.seal.epoch] {
			t.Errorf("two writers share epoch %d", r.seal.epoch)
		}
		seen[r.seal.epoch] = true
		r.Close()
	}
}

package ringfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presscap/presscap/internal/safefile"
	"golang.org/x/sys/unix"
)

// Ring is an open packet ring. Append, AddDrops, AddLink, Flush and Close
// belong to the single writer (they are safe to call from several goroutines
// but serialise); Read and Info may run concurrently with them.
type Ring struct {
	dir    string
	ro     bool
	maxAge time.Duration
	seal   *sealer // nil: a clear ring
	tail   int     // bytes a block keeps free after its records (the seal's tag)

	metaMu sync.Mutex
	meta   *meta

	rfiles []*os.File // read descriptors, one per segment

	// state is what readers see: the blocks written so far. Guarded by stateMu.
	stateMu sync.RWMutex
	segs    []segState // by slot

	// Writer side. mu guards cur, fill, hdr and closed.
	mu     sync.Mutex
	closed bool
	cur    *wbuf
	fill   int
	hdr    blockHeader
	jobs   chan job // to the checksum stage
	ioJobs chan job // checksum stage to the I/O goroutine
	free   chan *wbuf
	ioErr  atomic.Pointer[error]
	ioDone chan struct{}
	stop   chan struct{}
	tick   sync.WaitGroup
	w      *ioState // owned by the I/O goroutine
}

// segState is one segment's live blocks, in append order. entries is only
// ever appended to while gen stays the same, so a reader may keep the slice.
type segState struct {
	gen        uint64
	firstSeq   uint64
	entries    []entry
	tmin, tmax int64
	monotone   bool // every block starts at or after the max of the blocks before it
	damaged    bool // the header is damaged: entries are blocks lost (scanDamaged)
}

func (s *segState) add(e entry) {
	if len(s.entries) == 0 {
		s.tmin, s.tmax, s.monotone = e.tmin, e.tmax, true
		e.pmax = e.tmax
	} else {
		prev := s.entries[len(s.entries)-1].pmax
		if e.tmin < prev {
			s.monotone = false
		}
		e.pmax = max(prev, e.tmax)
		s.tmin, s.tmax = min(s.tmin, e.tmin), max(s.tmax, e.tmax)
	}
	s.entries = append(s.entries, e)
}

// wbuf is one block being filled or written; b is page-aligned for O_DIRECT.
type wbuf struct {
	b    []byte
	hdr  blockHeader
	pcrc uint32
}

type job struct {
	buf   *wbuf
	sync  bool       // fdatasync after writing what came before
	reply chan error // non-nil for barriers and syncs
}

// ioState is the I/O goroutine's private position in the ring.
type ioState struct {
	wfiles     []*os.File
	slot       int
	gen        uint64
	nextSeq    uint64
	off        int64 // next block offset in the current segment
	needSwitch bool  // start a new segment before the next block
	idxDone    int   // entries of the current segment whose index is written
	dirty      map[int]bool
	scratch    []byte // page-aligned, for index pages and segment headers

	wq       chan *flight
	flights  [ioDepth + 1]flight // reused round robin: at most ioDepth in flight
	nflight  int
	inflight []*flight
}

const nbufs = 6

// Create makes a new ring of o.Size bytes in dir (created if missing) and
// opens it for writing. All space is allocated now, so the ring never grows.
// dir may exist only empty or with the leftovers of a creation that was cut
// (segment files, a temporary ring.json); it must not be a symlink. Every
// file is created anew (O_EXCL, O_NOFOLLOW), and a creation that fails
// removes what it created and nothing else: the directory may be on a disk
// that also holds someone else's files.
func Create(dir string, o Options) (_ *Ring, err error) {
	segSize, segs, err := geometry(o.Size, o.BlockSize)
	if err != nil {
		return nil, err
	}
	if o.BlockSize == 0 {
		o.BlockSize = defBlock
	}
	madeDir, err := createDir(dir)
	if err != nil {
		return nil, fmt.Errorf("create ring: %w", err)
	}
	var made []string
	undo := func() {
		for _, p := range made {
			os.Remove(p)
		}
		if madeDir {
			os.Remove(dir) // empty again; never RemoveAll
		}
	}
	m := &meta{Format: metaFormat, RingID: newRingID(), Size: o.Size, SegmentSize: segSize,
		Segments: segs, BlockSize: o.BlockSize, MaxAge: o.MaxAge, Links: []Link{}}
	if o.Encrypt {
		// The key goes to KeyDir first: a ring.json never names a key
		// that was not kept.
		if m.KeyID, err = newKey(o.KeyDir, m.RingID); err != nil {
			undo()
			return nil, fmt.Errorf("create ring %s: %w", dir, err)
		}
		m.Encrypted = true
		defer func() {
			if err != nil {
				os.Remove(KeyPath(o.KeyDir, m.RingID))
			}
		}()
	}
	zero := make([]byte, pageSize)
	for i := range segs {
		p := m.segPath(dir, i)
		created, err := allocSegment(p, segSize, zero)
		if created {
			made = append(made, p)
		}
		if err != nil {
			undo()
			return nil, fmt.Errorf("create ring %s: %w", dir, err)
		}
	}
	if err := writeMeta(dir, m); err != nil {
		undo()
		return nil, fmt.Errorf("create ring %s: %w", dir, err)
	}
	// ring.json goes before the directory it is in.
	made = append(made, filepath.Join(dir, metaName))
	r, err := open(dir, m, o)
	if err != nil {
		undo()
		return nil, err
	}
	return r, nil
}

// ErrOccupied means Create found a directory it must not use: a symlink, a
// file, or one holding something that is not a ring's; or Open found a
// ring.json or segment that is not a regular file (a FIFO, say).
var ErrOccupied = errors.New("not a place for a new ring")

// leftoverRE matches the names a cut Create leaves: segment files and
// safefile.WriteFile's temporary for ring.json.
var leftoverRE = regexp.MustCompile(`^(seg-[0-9]{6,}|\.tmp-` + regexp.QuoteMeta(metaName) + `)$`)

// Vacant says whether Create may make a ring in dir: nil when dir is
// missing, empty or holds only a cut creation's leftovers (regular files
// with our names); an error wrapping ErrOccupied when it is a symlink, a
// file, or holds anything else; fs.ErrExist when it holds a ring.json.
func Vacant(dir string) error {
	_, err := vacant(dir)
	return err
}

// vacant is Vacant, returning the leftovers too (nil entries for a
// missing dir).
func vacant(dir string) ([]os.DirEntry, error) {
	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("%s is a symlink: not followed: %w", dir, ErrOccupied)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory: %w", dir, ErrOccupied)
	}
	if _, err := os.Lstat(filepath.Join(dir, metaName)); err == nil {
		return nil, fmt.Errorf("%s: %w", dir, fs.ErrExist)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !leftoverRE.MatchString(e.Name()) {
			return nil, fmt.Errorf("%s holds %q, which is not part of a ring (a ring is only created in an empty directory): %w", dir, e.Name(), ErrOccupied)
		}
	}
	return ents, nil
}

// Remove deletes the ring in dir, one that cannot be used any more (of an
// older format, or encrypted under a key that is gone), so that Create can
// make a new one there. It removes only what Create makes: ring.json
// first (what is left then is a cut creation's leftovers, which Create
// clears, should the removal itself be cut), then the segment files. A
// directory holding anything else, or a ring file that is not a regular
// file, is refused (ErrOccupied) before anything is removed: the disk
// may hold someone else's files. The directory itself stays.
func Remove(dir string) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("remove ring: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("remove ring: %s is not a directory: %w", dir, ErrOccupied)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("remove ring: %w", err)
	}
	var segs []string
	for _, e := range ents {
		ours := e.Name() == metaName || leftoverRE.MatchString(e.Name())
		if !ours || !e.Type().IsRegular() {
			return fmt.Errorf("remove ring: %s holds %q, which is not part of a ring: nothing removed: %w", dir, e.Name(), ErrOccupied)
		}
		if e.Name() != metaName {
			segs = append(segs, filepath.Join(dir, e.Name()))
		}
	}
	if err := os.Remove(filepath.Join(dir, metaName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove ring: %w", err)
	}
	if err := safefile.SyncDir(dir); err != nil {
		return fmt.Errorf("remove ring: %w", err)
	}
	for _, p := range segs {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove ring: %w", err)
		}
	}
	return nil
}

// createDir makes dir, or checks that it is vacant and removes a cut
// creation's leftovers. made says dir was created here.
func createDir(dir string) (made bool, err error) {
	ents, err := vacant(dir)
	if err != nil {
		return false, err
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return false, err
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			return false, err
		}
		return true, nil
	}
	for _, e := range ents {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("remove a cut creation's %s: %w", e.Name(), err)
		}
	}
	return false, nil
}

// allocSegment creates a segment file of size bytes; created says the file
// exists now (and is this call's to remove).
func allocSegment(path string, size int64, zero []byte) (created bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		if errors.Is(err, unix.ENOSPC) {
			return true, fmt.Errorf("allocate %s (%d bytes): %w", path, size, err)
		}
		// Filesystems without fallocate: a sized file is the best we can do.
		if err := f.Truncate(size); err != nil {
			return true, err
		}
	}
	// A stale header from an earlier ring in this place must not come back.
	if _, err := f.WriteAt(zero, 0); err != nil {
		return true, err
	}
	return true, f.Sync()
}

// Open opens an existing ring. Without o.ReadOnly it becomes the ring's
// writer: it recovers the newest valid block from the block headers and index
// and appends after it (in a fresh segment, so nothing written before the
// crash is ever overwritten by accident).
func Open(dir string, o Options) (*Ring, error) {
	m, err := readMeta(dir)
	if err != nil {
		return nil, err
	}
	return open(dir, m, o)
}

// Exists says whether dir holds a ring: a ring.json of any kind (Open says
// whether it is a valid one). A missing dir holds none; err is for what
// cannot be told (a disk that fails).
func Exists(dir string) (bool, error) {
	_, err := os.Lstat(filepath.Join(dir, metaName))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR):
		return false, nil
	}
	return false, err
}

// OpenOrCreate opens the ring in dir or, when dir holds none (Exists) and
// o.Size is set, creates one of o.Size bytes; created says which. A ring
// that does not open is an error, never replaced; no ring and no o.Size is
// an error wrapping ErrNoRing.
func OpenOrCreate(dir string, o Options) (r *Ring, created bool, err error) {
	ok, err := Exists(dir)
	if err != nil {
		return nil, false, fmt.Errorf("ring %s: %w", dir, err)
	}
	if ok {
		r, err := Open(dir, o)
		return r, false, err
	}
	if o.Size == 0 {
		return nil, false, fmt.Errorf("ring %s: %w", dir, ErrNoRing)
	}
	r, err = Create(dir, o)
	return r, err == nil, err
}

func open(dir string, m *meta, o Options) (*Ring, error) {
	r := &Ring{dir: dir, ro: o.ReadOnly, meta: m, maxAge: m.MaxAge}
	if m.Encrypted {
		s, err := loadSealer(o.KeyDir, m, !o.ReadOnly)
		if err != nil {
			return nil, fmt.Errorf("open ring %s: %w", dir, err)
		}
		r.seal, r.tail = s, sealTag
	}
	switch {
	case !o.ReadOnly:
		// The writer's configuration wins, 0 included: ring.json is on
		// the untrusted disk, and its max_age_ns only informs readers.
		r.maxAge = o.MaxAge
	case o.MaxAge != 0 && (r.maxAge == 0 || o.MaxAge < r.maxAge):
		r.maxAge = o.MaxAge
	}
	for i := range m.Segments {
		// The ring may be on someone else's disk: a segment that is a
		// symlink is not followed, one that is a FIFO not waited on.
		f, err := safefile.Open(m.segPath(dir, i), os.O_RDONLY)
		if err != nil {
			r.closeFiles()
			if errors.Is(err, safefile.ErrNotRegular) {
				err = fmt.Errorf("%w: %w", err, ErrOccupied)
			}
			return nil, fmt.Errorf("open ring %s: segment %d: %w", dir, i, err)
		}
		if st, err := f.Stat(); err != nil || st.Size() < m.SegmentSize {
			f.Close()
			r.closeFiles()
			return nil, fmt.Errorf("open ring %s: segment file %s is shorter than %d bytes: %w", dir, m.segPath(dir, i), m.SegmentSize, ErrNotRing)
		}
		r.rfiles = append(r.rfiles, f)
	}
	if r.ro {
		return r, nil // every Read and Info scans (incrementally) anyway
	}
	segs, err := r.scan(nil)
	if err != nil {
		r.closeFiles()
		return nil, err
	}
	r.segs = segs
	if !o.ReadOnly && o.MaxAge != m.MaxAge {
		m2 := *m
		m2.MaxAge = o.MaxAge
		if err := writeMeta(dir, &m2); err != nil {
			r.closeFiles()
			return nil, err
		}
		r.meta = &m2
	}
	w, err := r.newIOState(o.Buffered)
	if err != nil {
		r.closeFiles()
		return nil, err
	}
	r.w = w
	r.jobs = make(chan job, nbufs)
	r.ioJobs = make(chan job, nbufs)
	r.free = make(chan *wbuf, nbufs)
	for range nbufs {
		r.free <- &wbuf{b: alignedBuf(m.BlockSize)}
	}
	r.cur = <-r.free
	r.fill = blockHdrSize
	r.resetHdr()
	r.ioDone = make(chan struct{})
	go r.crcLoop()
	go r.ioLoop()
	interval := o.FlushInterval
	if interval == 0 {
		interval = defInterval
	}
	r.stop = make(chan struct{})
	if interval > 0 {
		r.tick.Add(1)
		go r.flusher(interval)
	}
	return r, nil
}

func (r *Ring) newIOState(buffered bool) (*ioState, error) {
	m := r.meta
	w := &ioState{dirty: map[int]bool{}, needSwitch: true, scratch: alignedBuf(64 << 10)}
	flags := os.O_RDWR
	if !buffered {
		flags |= unix.O_DIRECT
	}
	for i := range m.Segments {
		f, err := safefile.Open(m.segPath(r.dir, i), flags)
		if err == nil && i == 0 && flags&unix.O_DIRECT != 0 {
			// Some filesystems accept O_DIRECT at open and refuse the I/O;
			// an aligned read of the header page tells.
			if _, rerr := f.ReadAt(w.scratch[:pageSize], 0); errors.Is(rerr, unix.EINVAL) {
				f.Close()
				err = unix.EINVAL
			}
		}
		if err != nil && flags&unix.O_DIRECT != 0 && errors.Is(err, unix.EINVAL) {
			flags &^= unix.O_DIRECT // e.g. tmpfs
			f, err = safefile.Open(m.segPath(r.dir, i), flags)
		}
		if err != nil {
			for _, f := range w.wfiles {
				f.Close()
			}
			return nil, fmt.Errorf("open ring %s for writing: %w", r.dir, err)
		}
		w.wfiles = append(w.wfiles, f)
	}
	// Continue after the newest segment.
	w.slot = -1
	for i, s := range r.segs {
		if s.gen > w.gen {
			w.gen, w.slot = s.gen, i
		}
		if n := s.firstSeq + uint64(len(s.entries)); n > w.nextSeq {
			w.nextSeq = n
		}
	}
	if w.slot < 0 {
		w.slot = m.Segments - 1
	}
	return w, nil
}

func alignedBuf(n int) []byte {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		// Page alignment only matters for O_DIRECT; fall back to the heap.
		return make([]byte, n)
	}
	return b
}

func (r *Ring) resetHdr() {
	r.hdr = blockHeader{}
}

// AddLink registers a link and returns its id. It is idempotent by name: the
// same name returns the same id (the type and snap length are updated).
func (r *Ring) AddLink(l Link) (uint16, error) {
	if r.ro {
		return 0, ErrReadOnly
	}
	if err := CheckLinkName(l.Name); err != nil {
		return 0, fmt.Errorf("add link: %w", err)
	}
	r.metaMu.Lock()
	defer r.metaMu.Unlock()
	m := *r.meta
	m.Links = append([]Link(nil), m.Links...)
	for i, x := range m.Links {
		if x.Name == l.Name {
			if x == l {
				return uint16(i), nil
			}
			m.Links[i] = l
			if err := writeMeta(r.dir, &m); err != nil {
				return 0, err
			}
			r.meta = &m
			return uint16(i), nil
		}
	}
	if len(m.Links) >= 1<<16 {
		return 0, errors.New("add link: too many links")
	}
	m.Links = append(m.Links, l)
	if err := writeMeta(r.dir, &m); err != nil {
		return 0, err
	}
	r.meta = &m
	return uint16(len(m.Links) - 1), nil
}

// Links returns the ring's links, indexed by id.
func (r *Ring) Links() []Link {
	r.metaMu.Lock()
	defer r.metaMu.Unlock()
	return append([]Link(nil), r.meta.Links...)
}

// Append adds one packet. It copies rec.Data, so the caller may reuse it.
// Records are batched into blocks; they become durable at the next flush.
func (r *Ring) Append(rec Record) error {
	return r.add(kindPacket, &rec, 0)
}

// MaxData is the most captured bytes one record may hold: Append refuses
// a larger one with ErrTooLarge.
func (r *Ring) MaxData() int {
	r.metaMu.Lock()
	defer r.metaMu.Unlock()
	return r.meta.BlockSize - blockHdrSize - recHdrSize - r.tail
}

// AddDrops records that the capture lost n packets on link around time at
// (Unix ns). A Read whose window holds at reports them in ReadStats.Drops.
func (r *Ring) AddDrops(link uint16, at int64, n uint64) error {
	if n == 0 {
		return nil
	}
	var b [8]byte
	for i := range b {
		b[i] = byte(n >> (8 * i))
	}
	return r.add(kindDrops, &Record{Time: at, Link: link, Data: b[:]}, n)
}

func (r *Ring) add(kind uint16, rec *Record, drops uint64) error {
	if r.ro {
		return ErrReadOnly
	}
	n := recHdrSize + len(rec.Data)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	if p := r.ioErr.Load(); p != nil {
		r.mu.Unlock()
		return *p
	}
	bs := len(r.cur.b)
	if blockHdrSize+n+r.tail > bs {
		r.mu.Unlock()
		return fmt.Errorf("append %d-byte packet: %w of %d bytes", len(rec.Data), ErrTooLarge, bs)
	}
	// A gap record gets a block of its own (one page): Gaps reads every
	// block holding one, however old, and a flapping link must not make
	// that a read of megabytes of packets each.
	if r.fill+n+r.tail > bs || kind == kindGap {
		r.sealLocked()
	}
	putRecord(r.cur.b[r.fill:], kind, rec)
	r.fill += n
	h := &r.hdr
	if h.nrec == 0 {
		h.tmin, h.tmax = rec.Time, rec.Time
	} else if rec.Time < h.tmin {
		h.tmin = rec.Time
	} else if rec.Time > h.tmax {
		h.tmax = rec.Time
	}
	h.nrec++
	switch kind {
	case kindPacket:
		h.packets++
		h.bytes += uint64(len(rec.Data))
	case kindDrops:
		h.drops += drops
	case kindGap:
		h.flags |= flagGaps
		r.sealLocked()
	}
	r.mu.Unlock()
	return nil
}

// sealLocked hands the current block to the I/O goroutine and takes a free
// buffer (waiting for one if the disk is behind: that is the back pressure).
func (r *Ring) sealLocked() {
	if r.hdr.nrec == 0 {
		return
	}
	b := r.cur
	h := r.hdr
	end := r.fill + r.tail
	h.payloadLen = uint32(end - blockHdrSize)
	h.blockLen = uint32((end + pageSize - 1) / pageSize * pageSize)
	clear(b.b[r.fill:h.blockLen])
	b.hdr = h
	r.jobs <- job{buf: b}
	r.cur = <-r.free
	r.fill = blockHdrSize
	r.resetHdr()
}

// Flush writes everything appended before the call and makes it durable
// (fdatasync). Appends from other goroutines go on while it waits for the
// disk.
func (r *Ring) Flush() error { return r.push(true) }

// barrier makes every record appended so far visible to readers (written,
// not necessarily durable).
func (r *Ring) barrier() error { return r.push(false) }

// push hands the block being filled to the I/O goroutine, followed by a
// marker it answers once everything before it is written (and, if durable,
// synced). The appender lock is released before waiting, so a slow USB
// disk's fdatasync does not stall the capture.
func (r *Ring) push(durable bool) error {
	if r.ro {
		return ErrReadOnly
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.sealLocked()
	reply := make(chan error, 1)
	r.jobs <- job{sync: durable, reply: reply}
	r.mu.Unlock()
	return <-reply
}

func (r *Ring) syncLocked(durable bool) error {
	r.sealLocked()
	reply := make(chan error, 1)
	r.jobs <- job{sync: durable, reply: reply}
	return <-reply
}

func (r *Ring) flusher(d time.Duration) {
	defer r.tick.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			// The error is sticky in ioErr; Append and Flush report it.
			_ = r.Flush()
		}
	}
}

// Close flushes and closes the ring. A closed ring cannot be used again.
func (r *Ring) Close() error {
	if r.ro {
		r.closeFiles()
		return nil
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	close(r.stop)
	r.mu.Unlock()
	r.tick.Wait()
	r.mu.Lock()
	err := r.syncLocked(true)
	r.closed = true
	close(r.jobs)
	r.mu.Unlock()
	<-r.ioDone
	for _, f := range r.w.wfiles {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}
	r.closeFiles()
	return err
}

func (r *Ring) closeFiles() {
	for _, f := range r.rfiles {
		f.Close()
	}
}

// crcLoop checksums block payloads on their way to the disk, so that neither
// the appender nor the writes wait for it.
func (r *Ring) crcLoop() {
	defer close(r.ioJobs)
	for j := range r.jobs {
		if j.buf != nil && r.seal == nil {
			// A sealed block's checksum covers its ciphertext: the
			// writes compute it after sealing.
			j.buf.pcrc = payloadCRC(j.buf.b, j.buf.hdr.payloadLen)
		}
		r.ioJobs <- j
	}
}

// ioLoop is the only code that places blocks. It keeps up to ioDepth block
// writes in flight (disks, USB ones included, are faster with more than one
// request queued) and publishes blocks to readers strictly in order, each only
// once its write has completed.
func (r *Ring) ioLoop() {
	defer close(r.ioDone)
	w := r.w
	wq := make(chan *flight)
	defer close(wq)
	for range ioDepth {
		go func() {
			for f := range wq {
				if r.seal != nil {
					// Sealed here, two blocks at once, off the appender's
					// and the placing goroutine's path.
					r.seal.seal(f.buf.b, &f.buf.hdr, f.slot, f.e.off)
				}
				_, err := w.wfiles[f.slot].WriteAt(f.buf.b[:f.buf.hdr.blockLen], f.e.off)
				f.done <- err
			}
		}()
	}
	w.wq = wq
	var err error
	fail := func(e error) {
		if err == nil && e != nil {
			err = e
			r.ioErr.Store(&err)
		}
	}
	for j := range r.ioJobs {
		if j.buf != nil {
			if err != nil {
				r.free <- j.buf
				continue
			}
			fail(r.writeBlock(j.buf))
			continue
		}
		fail(r.drain())
		if err == nil && j.sync {
			fail(r.syncFiles())
		}
		j.reply <- err
	}
	fail(r.drain())
}

const ioDepth = 2

// flight is a block write in progress.
type flight struct {
	buf  *wbuf
	slot int
	e    entry
	done chan error
}

func (r *Ring) writeBlock(b *wbuf) error {
	w, m := r.w, r.meta
	h := &b.hdr
	if w.needSwitch || w.off+int64(h.blockLen) > m.SegmentSize {
		if err := r.drain(); err != nil {
			r.free <- b
			return err
		}
		if err := r.switchSegment(); err != nil {
			r.free <- b
			return err
		}
	}
	h.gen = uint32(w.gen)
	h.seq = w.nextSeq
	if r.seal == nil {
		putBlockHeader(b.b, h, b.pcrc)
	}
	f := &w.flights[w.nflight%len(w.flights)]
	*f = flight{buf: b, slot: w.slot, e: entryFromHeader(w.off, h), done: f.done}
	if f.done == nil {
		f.done = make(chan error, 1)
	}
	w.inflight = append(w.inflight, f)
	w.nflight++
	w.wq <- f
	w.off += int64(h.blockLen)
	w.nextSeq++
	if len(w.inflight) >= ioDepth {
		return r.complete()
	}
	return nil
}

// complete waits for the oldest write in flight and publishes its block.
func (r *Ring) complete() error {
	w := r.w
	f := w.inflight[0]
	w.inflight = append(w.inflight[:0], w.inflight[1:]...)
	err := <-f.done
	r.free <- f.buf
	if err != nil {
		return fmt.Errorf("ring %s: write block to segment %d at %d: %w", r.dir, f.slot, f.e.off, err)
	}
	w.dirty[f.slot] = true
	r.stateMu.Lock()
	r.segs[f.slot].add(f.e)
	r.stateMu.Unlock()
	return nil
}

func (r *Ring) drain() error {
	var first error
	for len(r.w.inflight) > 0 {
		if err := r.complete(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// switchSegment finishes the current segment's index and starts the next
// segment with a new generation, which retires everything it held.
func (r *Ring) switchSegment() error {
	w, m := r.w, r.meta
	if !w.needSwitch {
		if err := r.writeIndex(); err != nil {
			return err
		}
	}
	w.needSwitch = false
	w.slot = (w.slot + 1) % m.Segments
	w.gen++
	w.off = m.dataOff()
	w.idxDone = 0
	// Readers must learn that the old contents are gone before any byte of
	// them changes, so that a torn read is reported as overtaken.
	r.stateMu.Lock()
	r.segs[w.slot] = segState{gen: w.gen, firstSeq: w.nextSeq}
	r.stateMu.Unlock()
	hdr := w.scratch[:pageSize]
	clear(hdr)
	putSegHeader(hdr, segHeader{ringID: m.RingID, gen: w.gen, firstSeq: w.nextSeq})
	if _, err := w.wfiles[w.slot].WriteAt(hdr, 0); err != nil {
		return fmt.Errorf("ring %s: start segment %d: %w", r.dir, w.slot, err)
	}
	// Invalidate the first index page so a stale entry of the old
	// generation can never pass for the new one (it also carries gen, but
	// the CRC-per-entry check is cheaper to reason about with a clean page).
	clear(hdr)
	if _, err := w.wfiles[w.slot].WriteAt(hdr, pageSize); err != nil {
		return fmt.Errorf("ring %s: start segment %d: %w", r.dir, w.slot, err)
	}
	w.dirty[w.slot] = true
	return nil
}

// writeIndex writes the index entries of the current segment not yet on disk.
func (r *Ring) writeIndex() error {
	w := r.w
	r.stateMu.RLock()
	s := r.segs[w.slot]
	r.stateMu.RUnlock()
	n := len(s.entries)
	if n == w.idxDone {
		return nil
	}
	// Rewrite whole pages from the one holding the first new entry.
	const per = pageSize / indexEntrySize
	first := w.idxDone / per * per
	for first < n {
		chunk := min(n-first, len(w.scratch)/indexEntrySize)
		pages := (chunk*indexEntrySize + pageSize - 1) / pageSize
		buf := w.scratch[:pages*pageSize]
		clear(buf)
		for k := range chunk {
			e := s.entries[first+k]
			putIndexEntry(buf[k*indexEntrySize:], uint32(s.gen), s.firstSeq+uint64(first+k), &e)
		}
		if _, err := w.wfiles[w.slot].WriteAt(buf, pageSize+int64(first)*indexEntrySize); err != nil {
			return fmt.Errorf("ring %s: write index of segment %d: %w", r.dir, w.slot, err)
		}
		first += chunk
	}
	w.idxDone = n
	w.dirty[w.slot] = true
	return nil
}

func (r *Ring) syncFiles() error {
	w := r.w
	if !w.needSwitch {
		if err := r.writeIndex(); err != nil {
			return err
		}
	}
	for slot := range w.dirty {
		if err := unix.Fdatasync(int(w.wfiles[slot].Fd())); err != nil {
			return fmt.Errorf("ring %s: sync segment %d: %w", r.dir, slot, err)
		}
		delete(w.dirty, slot)
	}
	return nil
}

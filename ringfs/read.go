package ringfs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"

	"golang.org/x/sys/unix"
)

// prefetch is how far ahead of the block being read a reader asks the
// kernel to read.
const prefetch = 16 << 20

// view is a reader's snapshot of one segment.
type view struct {
	slot int
	segState
}

// snapshot returns the live segments oldest first. A writer first pushes out
// everything appended so far, so a window ending now is complete; a read-only
// ring rescans the disk, where another process may be writing.
func (r *Ring) snapshot() ([]view, error) { return r.snapshotAt(true) }

func (r *Ring) snapshotAt(push bool) ([]view, error) {
	var segs []segState
	if r.ro {
		r.stateMu.RLock()
		prev := r.segs
		r.stateMu.RUnlock()
		s, err := r.scan(prev)
		if err != nil {
			return nil, err
		}
		r.stateMu.Lock()
		r.segs = s
		r.stateMu.Unlock()
		segs = s
	} else {
		if push {
			if err := r.barrier(); err != nil {
				return nil, err
			}
		}
		r.stateMu.RLock()
		segs = slices.Clone(r.segs)
		r.stateMu.RUnlock()
	}
	vs := make([]view, 0, len(segs))
	for i, s := range segs {
		if s.gen != 0 && len(s.entries) > 0 {
			vs = append(vs, view{i, s})
		}
	}
	sort.Slice(vs, func(a, b int) bool { return vs[a].gen < vs[b].gen })
	return vs, nil
}

// cutoff is the oldest timestamp MaxAge lets through: MaxAge before the
// newest block's latest timestamp ("the ring's now", which survives a wrong
// wall clock better than time.Now on a Pi without RTC).
func (r *Ring) cutoff(vs []view) (int64, bool) {
	if r.maxAge <= 0 || len(vs) == 0 {
		return 0, false
	}
	last := vs[len(vs)-1].entries
	return last[len(last)-1].tmax - int64(r.maxAge), true
}

// Read calls fn for every packet whose timestamp t satisfies from ≤ t < to,
// in the order the packets were appended. rec.Data is only valid during the
// call. Timestamps need not be monotonic: every block whose time range
// overlaps the window is considered, found through the per-segment index
// (binary search on the running maximum of block end times), so a read costs
// O(segments + log blocks) lookups plus the blocks that overlap the window.
//
// When the ring no longer holds the window's start, or the writer overwrites
// part of it during the read, ReadStats.Truncated says so and why.
func (r *Ring) Read(ctx context.Context, from, to int64, fn func(Record) error) (ReadStats, error) {
	var pos Pos
	return r.Follow(ctx, from, to, &pos, true, fn)
}

// Pos is a reader's place in the ring's append order, for reading a window
// in several steps while it is being written (Follow). The zero value is
// the start: nothing read yet.
type Pos struct {
	// Next is the sequence number of the first block not read yet.
	Next uint64 `json:"next_block"`
	// Started: the window's start was judged (see ReadStats.Truncated).
	Started bool `json:"started"`
	// Last is the latest block end time read (Unix ns), where a gap left
	// by the writer would begin.
	Last int64 `json:"last_ns"`
	// Counted is the latest block end time of the blocks the writer
	// overwrote unread that Missing already counts: a later gap begins
	// after it too, so no lost time is counted twice.
	Counted int64 `json:"counted_ns,omitempty"`
	// Since, if not zero, is set by the caller: the ring has been
	// recording since then (Unix ns). A ring that never wrapped and whose
	// oldest record is younger than the window's start then lacks nothing
	// if Since is not after the start: the line was merely quiet.
	Since int64 `json:"since_ns,omitempty"`
}

// Follow is Read in steps: it delivers the window's records in blocks
// appended at or after pos and advances pos past every block the ring holds
// now, so that calling it again later delivers only what the writer added
// since. push makes everything appended so far readable first (as Read
// does); without it Follow sees what the writer has written out, which
// costs the writer nothing. A call that returns an error leaves pos.Next at
// the block it stopped in (a cancelled one: the first block not delivered).
// The first call judges whether the ring still
// reaches back to from; a later one, whether the writer overwrote blocks
// after pos before they were read. Both show in ReadStats.Truncated.
func (r *Ring) Follow(ctx context.Context, from, to int64, pos *Pos, push bool, fn func(Record) error) (ReadStats, error) {
	var st ReadStats
	if from > to {
		return st, fmt.Errorf("read window [%d, %d): %w", from, to, ErrBadWindow)
	}
	vs, err := r.snapshotAt(push)
	if err != nil {
		return st, err
	}
	cut, aged := r.cutoff(vs)
	if !pos.Started {
		pos.Started = true
		st.Corrupt += r.damagedIn(from, to)
		r.judgeStart(vs, from, to, cut, aged, pos.Since, &st)
	} else if len(vs) > 0 && vs[0].firstSeq > pos.Next {
		// Blocks appended after the last step were overwritten before
		// this one: they may have held part of the window.
		st.truncate(ReasonOvertaken, oldest(vs))
		st.Missing += max(0, min(vs[0].tmin, to)-max(pos.Last, pos.Counted, from))
	}
	next, end := pos.Next, pos.Next
	for _, v := range vs {
		end = max(end, v.firstSeq+uint64(len(v.entries)))
	}
	if aged && cut > from {
		from = cut
	}
	if from >= to {
		pos.Next = end
		return st, nil
	}
	var buf []byte
	var ahead int64 // prefetched up to here in the current segment
	for _, v := range vs {
		ahead = 0
		if v.firstSeq+uint64(len(v.entries)) <= next || v.tmax < from || v.tmin >= to {
			continue
		}
		es := v.entries
		k := sort.Search(len(es), func(i int) bool { return es[i].pmax >= from })
		if next > v.firstSeq {
			k = max(k, int(next-v.firstSeq))
		}
		for ; k < len(es); k++ {
			e := &es[k]
			if e.tmin >= to {
				if v.monotone {
					break // every later block of this segment starts later still
				}
				continue
			}
			if e.tmax < from {
				continue
			}
			if !r.ro && r.overtaken(v) {
				// The writer has begun this segment again: its blocks
				// are lost, and reading them would only give the writer
				// more time to overtake the blocks after them too.
				r.lost(v, e, from, to, pos, &st)
				break
			}
			if err := ctx.Err(); err != nil {
				// Stopped before this block: the next step starts here,
				// so files kept with pos lack nothing and repeat nothing.
				pos.Next = max(next, v.firstSeq+uint64(k))
				return st, err
			}
			if buf == nil {
				buf = make([]byte, r.meta.BlockSize)
			}
			if e.off+int64(e.blockLen)+prefetch/2 > ahead {
				// Ask the kernel for the next blocks while this one is
				// decoded and written out: a cold window then streams from
				// the disk instead of waiting block by block. Advice only.
				start := max(e.off, ahead)
				ahead = e.off + prefetch
				_ = unix.Fadvise(int(r.rfiles[v.slot].Fd()), start, ahead-start, unix.FADV_WILLNEED)
			}
			b := buf[:e.blockLen]
			st.Blocks++
			if _, err := r.rfiles[v.slot].ReadAt(b, e.off); err != nil {
				// The disk failed or went away: that is no torn block.
				pos.Next = max(next, v.firstSeq+uint64(k))
				return st, fmt.Errorf("ring %s: read block %d of segment %d: %w", r.dir, v.firstSeq+uint64(k), v.slot, err)
			}
			h, recs, rerr := r.openBlock(b, v.slot, e.off, v.gen, v.firstSeq+uint64(k))
			if rerr != nil {
				if r.overtaken(v) {
					r.lost(v, e, from, to, pos, &st)
					break
				}
				st.Corrupt++
				continue
			}
			pos.Last = max(pos.Last, e.tmax)
			// Validated above: walk the records without checking again.
			err := walkRecords(recs, h, func(kind uint16, rec Record) error {
				if rec.Time < from || rec.Time >= to {
					return nil
				}
				switch kind {
				case kindDrops:
					st.Drops += binary.LittleEndian.Uint64(rec.Data)
					return nil
				case kindGap:
					return nil // Gaps reports them
				}
				st.Packets++
				st.Bytes += uint64(len(rec.Data))
				return fn(rec)
			})
			if err != nil {
				// fn failed part way through this block.
				pos.Next = max(next, v.firstSeq+uint64(k))
				return st, err
			}
		}
	}
	pos.Next = end
	return st, nil
}

// lost notes that the writer overwrote v's segment from block e on before
// it was read: the rest of the segment's part of [from, to) is missing.
func (r *Ring) lost(v view, e *entry, from, to int64, pos *Pos, st *ReadStats) {
	now, _ := r.snapshotAt(false)
	st.truncate(ReasonOvertaken, oldest(now))
	if st.Packets == 0 && pos.Last == 0 {
		// Nothing of the window delivered yet: what is delivered begins
		// where the ring reaches now.
		st.Oldest = oldest(now)
	}
	st.Missing += max(0, min(v.tmax, to)-max(e.tmin, from, pos.Counted))
	pos.Counted = max(pos.Counted, v.tmax)
}

// openBlock checks a block read from slot's offset off, which the index
// says is block seq of generation gen, and returns its records' bytes.
// Any error means the block is not served: torn, corrupt or overwritten.
// A sealed ring's block is opened in place: b no longer holds the ciphertext.
func (r *Ring) openBlock(b []byte, slot int, off int64, gen, seq uint64) (blockHeader, []byte, error) {
	h, err := checkBlock(b)
	if err != nil {
		return h, nil, err
	}
	if h.gen != uint32(gen) || h.seq != seq {
		return h, nil, errors.New("block from another generation")
	}
	recs := b[blockHdrSize : blockHdrSize+int(h.payloadLen)]
	if r.seal != nil {
		if recs, err = r.seal.open(b, &h, slot, off); err != nil {
			return h, nil, err
		}
	}
	return h, recs, walkRecords(recs, h, nil)
}

// judgeStart tells whether the ring still holds the start of [from, to) and,
// if not, why: it is the check a read makes before its first block.
func (r *Ring) judgeStart(vs []view, from, to, cut int64, aged bool, since int64, st *ReadStats) {
	if since != 0 && since <= from && (len(vs) == 0 || vs[0].gen == 1) && !(aged && cut > from) {
		return // recording all along, nothing overwritten or hidden
	}
	if len(vs) == 0 {
		// Nothing recorded yet: the window before the ring is lacking.
		st.truncate(ReasonYounger, since)
		st.Missing = to - from
		if since > from {
			st.Missing = min(since, to) - from
		}
		return
	}
	old := oldest(vs)
	switch {
	case aged && cut > from && old < cut:
		// Packets in [from, cut) may be there, but max_age hides them.
		st.truncate(ReasonMaxAge, cut)
	case old > from && vs[0].gen > 1:
		// The first segment ever written is gone: the ring wrapped, and
		// what it overwrote reached into the window.
		st.truncate(ReasonNotReached, old)
	case old > from:
		// Nothing was ever overwritten: the ring started after from
		// (recording, if quiet, from since on when the caller knows).
		if since > from {
			old = min(old, since)
		}
		st.truncate(ReasonYounger, old)
	default:
		return
	}
	st.Missing = min(st.Oldest, to) - from
}

// truncate marks st truncated; the first reason found is Reason, with how
// far back the ring reached then; Reasons gains every new one.
func (st *ReadStats) truncate(reason string, oldest int64) {
	if !st.Truncated {
		st.Truncated, st.Reason, st.Oldest = true, reason, oldest
	}
	if !slices.Contains(st.Reasons, reason) {
		st.Reasons = append(st.Reasons, reason)
	}
}

// oldest is the smallest record time of the segments vs (0 if none).
func oldest(vs []view) int64 {
	if len(vs) == 0 {
		return 0
	}
	o := vs[0].tmin
	for _, v := range vs[1:] {
		o = min(o, v.tmin)
	}
	return o
}

// overtaken tells whether the writer has started overwriting v's segment
// since the snapshot.
func (r *Ring) overtaken(v view) bool {
	if !r.ro {
		r.stateMu.RLock()
		defer r.stateMu.RUnlock()
		return r.segs[v.slot].gen != v.gen
	}
	page := make([]byte, 64)
	if _, err := r.rfiles[v.slot].ReadAt(page, 0); err != nil {
		return false
	}
	h, ok := parseSegHeader(page)
	return !ok || h.gen != v.gen
}

// Behind tells whether the writer has more blocks waiting for the disk than
// its normal pipeline holds: the disk is not keeping up with the capture
// right now. A reader that can wait (a save) should, so the capture keeps
// the disk. Always false on a read-only ring.
func (r *Ring) Behind() bool {
	if r.ro {
		return false
	}
	return len(r.free) < nbufs-2-ioDepth
}

// ID is the ring's identity, drawn at random when the ring was created and
// stored in every segment header: it tells this ring from another one made
// later in the same place (a reformatted or replaced disk).
func (r *Ring) ID() uint64 {
	r.metaMu.Lock()
	defer r.metaMu.Unlock()
	return r.meta.RingID
}

// Info summarises the ring from its index, without reading packet data. On
// the writer it covers what has been written out, which lags Append by at
// most the flush interval (so polling Info does not cut blocks short).
func (r *Ring) Info() (Info, error) {
	r.metaMu.Lock()
	m := r.meta // AddLink replaces it under metaMu
	in := Info{Dir: r.dir, Size: m.Size, SegmentSize: m.SegmentSize, Segments: m.Segments,
		BlockSize: m.BlockSize, MaxAge: r.maxAge, Links: slices.Clone(r.meta.Links), Encrypted: m.Encrypted}
	r.metaMu.Unlock()
	vs, err := r.snapshotAt(false)
	if err != nil {
		return in, err
	}
	cut, aged := r.cutoff(vs)
	first := true
	for _, v := range vs {
		for _, e := range v.entries {
			if aged && e.tmax < cut {
				continue
			}
			in.Blocks++
			in.Used += int64(e.blockLen)
			in.Packets += uint64(e.packets)
			in.Bytes += e.bytes
			in.Drops += e.drops
			if e.packets == 0 {
				continue
			}
			lo := e.tmin
			if aged {
				lo = max(lo, cut)
			}
			if first {
				in.Oldest, in.Newest, first = lo, e.tmax, false
			} else {
				in.Oldest, in.Newest = min(in.Oldest, lo), max(in.Newest, e.tmax)
			}
		}
	}
	return in, nil
}

package ringfs

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// scan rebuilds the readers' view of the ring from disk: one header page per
// segment, the used part of each index area, and a header walk over the few
// blocks written after the index was last saved. It reads no packet data
// except to verify those unindexed blocks. Segments of prev (an earlier scan)
// whose generation is unchanged are only read from where that scan stopped.
func (r *Ring) scan(prev []segState) ([]segState, error) {
	segs := make([]segState, r.meta.Segments)
	errs := make([]error, len(segs))
	// Segments are independent: scanning several at once keeps the disk's
	// queue busy, which is what a cold open waits for.
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(scanWorkers, len(segs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			page := make([]byte, pageSize)
			for i := range work {
				errs[i] = r.scanSegment(i, prev, &segs[i], page)
			}
		}()
	}
	for i := range segs {
		work <- i
	}
	close(work)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return segs, nil
}

const scanWorkers = 8

func (r *Ring) scanSegment(i int, prev []segState, s *segState, page []byte) error {
	m := r.meta
	if _, err := r.rfiles[i].ReadAt(page, 0); err != nil {
		return fmt.Errorf("ring %s: read segment %d header: %w", r.dir, i, err)
	}
	h, ok := parseSegHeader(page)
	if !ok && segHeaderDamaged(page) {
		return r.scanDamaged(i, s)
	}
	if !ok || h.ringID != m.RingID {
		return nil // never used or not ours: empty
	}
	*s = segState{gen: h.gen, firstSeq: h.firstSeq}
	if i < len(prev) && prev[i].gen == h.gen && prev[i].firstSeq == h.firstSeq {
		// Clipped, so that adding entries never writes into an array
		// another reader's snapshot shares.
		*s = prev[i]
		s.entries = slices.Clip(prev[i].entries)
	}
	if err := r.loadIndex(i, s); err != nil {
		return err
	}
	return r.walkTail(i, s, nil)
}

// loadIndex reads index entries until the first one that is missing, torn or
// from an older generation of the segment.
func (r *Ring) loadIndex(slot int, s *segState) error {
	m := r.meta
	f := r.rfiles[slot]
	buf := make([]byte, 64<<10)
	limit := m.dataOff()
	expOff := limit
	if n := len(s.entries); n > 0 {
		expOff = s.entries[n-1].off + int64(s.entries[n-1].blockLen)
	}
	for {
		pos := int64(pageSize) + int64(len(s.entries))*indexEntrySize
		n := min(int64(len(buf)), limit-pos) / indexEntrySize * indexEntrySize
		if n <= 0 {
			return nil
		}
		if _, err := f.ReadAt(buf[:n], pos); err != nil {
			return fmt.Errorf("ring %s: read index of segment %d: %w", r.dir, slot, err)
		}
		for k := int64(0); k < n; k += indexEntrySize {
			gen, seq, e, ok := parseIndexEntry(buf[k : k+indexEntrySize])
			want := s.firstSeq + uint64(len(s.entries))
			if !ok || gen != uint32(s.gen) || seq != want || e.off != expOff ||
				e.off+int64(e.blockLen) > m.SegmentSize || int(e.blockLen) > m.BlockSize {
				return nil
			}
			s.add(e)
			expOff += int64(e.blockLen)
		}
	}
}

// walkTail follows block headers after the last indexed block. Blocks found
// this way are verified in full (checksum) before they are accepted.
func (r *Ring) walkTail(slot int, s *segState, blockBuf []byte) error {
	m := r.meta
	f := r.rfiles[slot]
	off := m.dataOff()
	if n := len(s.entries); n > 0 {
		off = s.entries[n-1].off + int64(s.entries[n-1].blockLen)
	}
	hb := make([]byte, blockHdrSize)
	for off+pageSize <= m.SegmentSize {
		if _, err := f.ReadAt(hb, off); err != nil {
			return fmt.Errorf("ring %s: read block header in segment %d at %d: %w", r.dir, slot, off, err)
		}
		h, err := parseBlockHeader(hb)
		if err != nil || h.gen != uint32(s.gen) || h.seq != s.firstSeq+uint64(len(s.entries)) ||
			off+int64(h.blockLen) > m.SegmentSize || int(h.blockLen) > m.BlockSize {
			return nil
		}
		if cap(blockBuf) < int(h.blockLen) {
			blockBuf = make([]byte, m.BlockSize)
		}
		b := blockBuf[:h.blockLen]
		if _, err := f.ReadAt(b, off); err != nil {
			return fmt.Errorf("ring %s: read block in segment %d at %d: %w", r.dir, slot, off, err)
		}
		if _, _, err := r.openBlock(b, slot, off, s.gen, h.seq); err != nil {
			return nil // torn (or, sealed, not authentic): the log of this segment ends here
		}
		s.add(entryFromHeader(off, &h))
		off += int64(h.blockLen)
	}
	return nil
}

// segHeaderDamaged tells a header page that was written and then damaged
// from one never written: Create zeroes the page, and the writer writes the
// header in one aligned page write, which a power cut does not tear.
func segHeaderDamaged(page []byte) bool {
	if string(page[:len(segMagic)]) == segMagic {
		return true // the checksum failed (a valid gen 0 is not written)
	}
	for _, b := range page[:64] {
		if b != 0 {
			return true
		}
	}
	return false
}

// scanDamaged finds the blocks of a segment whose header is damaged,
// through the chain its index (or its first block) starts. They are not
// served: without the header neither the ring id nor the whole generation
// can be checked. s keeps gen 0, so no reader takes the segment for live
// data, and damaged set, so that reads count the blocks in their window
// as corrupt instead of losing them silently.
func (r *Ring) scanDamaged(slot int, s *segState) error {
	f := r.rfiles[slot]
	probe := segState{}
	b := make([]byte, max(indexEntrySize, blockHdrSize))
	if _, err := f.ReadAt(b[:indexEntrySize], pageSize); err != nil {
		return fmt.Errorf("ring %s: read index of segment %d: %w", r.dir, slot, err)
	}
	if gen, seq, _, ok := parseIndexEntry(b[:indexEntrySize]); ok {
		probe.gen, probe.firstSeq = uint64(gen), seq
	} else {
		if _, err := f.ReadAt(b[:blockHdrSize], r.meta.dataOff()); err != nil {
			return fmt.Errorf("ring %s: read block header in segment %d: %w", r.dir, slot, err)
		}
		h, err := parseBlockHeader(b[:blockHdrSize])
		if err != nil {
			*s = segState{damaged: true}
			return nil
		}
		probe.gen, probe.firstSeq = uint64(h.gen), h.seq
	}
	if err := r.loadIndex(slot, &probe); err != nil {
		return err
	}
	if err := r.walkTail(slot, &probe, nil); err != nil {
		return err
	}
	probe.gen, probe.damaged = 0, true
	*s = probe
	return nil
}

// damagedIn counts the blocks of damaged segments (scanDamaged) that
// overlap [from, to).
func (r *Ring) damagedIn(from, to int64) int {
	r.stateMu.RLock()
	defer r.stateMu.RUnlock()
	n := 0
	for _, s := range r.segs {
		if !s.damaged {
			continue
		}
		for _, e := range s.entries {
			if e.tmax >= from && e.tmin < to {
				n++
			}
		}
	}
	return n
}

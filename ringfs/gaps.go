package ringfs

import (
	"context"
	"encoding/binary"
	"fmt"
)

// Gap is a time a link was down: the ring holds no packet of it then
// because there was none to capture, not because any was lost.
type Gap struct {
	Link uint16
	From int64 // went down, Unix ns
	// To is when it came back (Unix ns); 0 while the ring holds no record
	// of its return (still down, or the writer stopped before it came back).
	To int64
}

// AddGap records a link's gap: once with To 0 when the link goes down, and
// again with the same From and its To when it comes back (a gap learned
// only afterwards may be recorded just once, complete). The record is
// stored at To (or From) like a packet, so it survives what packets survive.
func (r *Ring) AddGap(g Gap) error {
	if g.To != 0 && g.To < g.From {
		return fmt.Errorf("gap of link %d: ends at %d, before its start %d", g.Link, g.To, g.From)
	}
	var b [gapDataLen]byte
	binary.LittleEndian.PutUint64(b[0:], uint64(g.From))
	binary.LittleEndian.PutUint64(b[8:], uint64(g.To))
	at := g.From
	if g.To != 0 {
		at = g.To
	}
	return r.add(kindGap, &Record{Time: at, Link: g.Link, Data: b[:]}, 0)
}

// Gaps returns the gaps that overlap [from, to), oldest record first: a gap
// whose return was recorded once, complete; one never closed with To 0. Only
// the blocks flagged as holding gap records are read (one page each: the
// writer gives every gap record a block of its own), however long ago they
// were written (a gap may have begun long before the window). Gap records
// are not packets: Read and Follow never deliver them, and max_age does not
// hide them.
func (r *Ring) Gaps(ctx context.Context, from, to int64) ([]Gap, error) {
	if from > to {
		return nil, fmt.Errorf("gaps [%d, %d): %w", from, to, ErrBadWindow)
	}
	vs, err := r.snapshot()
	if err != nil {
		return nil, err
	}
	var all []Gap
	seen := map[Gap]int{} // a gap's start (To 0) → its place in all
	var buf []byte
	for _, v := range vs {
		for k := range v.entries {
			e := &v.entries[k]
			if e.flags&flagGaps == 0 {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if buf == nil {
				buf = make([]byte, r.meta.BlockSize)
			}
			b := buf[:e.blockLen]
			if _, err := r.rfiles[v.slot].ReadAt(b, e.off); err != nil {
				return nil, fmt.Errorf("ring %s: read block %d of segment %d: %w", r.dir, v.firstSeq+uint64(k), v.slot, err)
			}
			h, recs, err := r.openBlock(b, v.slot, e.off, v.gen, v.firstSeq+uint64(k))
			if err != nil {
				continue // overwritten or corrupt: its gaps went with it
			}
			err = walkRecords(recs, h, func(kind uint16, rec Record) error {
				if kind != kindGap {
					return nil
				}
				g := Gap{Link: rec.Link, From: int64(binary.LittleEndian.Uint64(rec.Data)),
					To: int64(binary.LittleEndian.Uint64(rec.Data[8:]))}
				// The start and the end pair up in either order, and a
				// start recorded again (a reopened ring) adds nothing.
				start := Gap{Link: g.Link, From: g.From}
				if i, ok := seen[start]; ok {
					if g.To != 0 {
						all[i] = g
					}
					return nil
				}
				seen[start] = len(all)
				all = append(all, g)
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	var gs []Gap
	for _, g := range all {
		if g.From < to && (g.To == 0 || g.To > from) {
			gs = append(gs, g)
		}
	}
	return gs, nil
}

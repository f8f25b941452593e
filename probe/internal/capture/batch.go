package capture

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// batch carries packets of one link from its reader to the writer, and
// the drops the reader counted since its previous batch. Packets lie back
// to back in data, each behind a 16-byte header (time, original length,
// captured length), so a batch needs no per-packet allocation.
type batch struct {
	link  *link
	data  []byte
	n     int // packets in data
	drops []dropEvent
	// first is the kernel timestamp of the first packet, to bound how long
	// a batch of a quiet link waits before it is handed on; last is the
	// newest packet's.
	first, last int64
	// mark is set when the batch is handed on: every packet of the link
	// timestamped at or before it is in this batch or an earlier one, or
	// was counted as dropped (see link.send).
	mark int64
}

const recHeader = 16

type dropEvent struct {
	at int64
	n  uint64
}

func (b *batch) reset(l *link) {
	b.link = l
	b.data = b.data[:0]
	b.n = 0
	b.drops = b.drops[:0]
	b.first, b.last, b.mark = 0, 0, 0
}

// room reports whether a packet of n bytes fits.
func (b *batch) room(n int) bool { return len(b.data)+recHeader+n <= cap(b.data) }

func (b *batch) empty() bool { return b.n == 0 && len(b.drops) == 0 }

// add reserves room for a packet and returns where its bytes go.
func (b *batch) add(ts int64, origLen uint32, caplen int) []byte {
	off := len(b.data)
	b.data = b.data[:off+recHeader+caplen]
	h := b.data[off:]
	binary.LittleEndian.PutUint64(h[0:], uint64(ts))
	binary.LittleEndian.PutUint32(h[8:], origLen)
	binary.LittleEndian.PutUint32(h[12:], uint32(caplen))
	b.n++
	return b.data[off+recHeader:]
}

// each calls fn for every packet in order.
func (b *batch) each(fn func(ts int64, origLen uint32, data []byte)) {
	for off := 0; off < len(b.data); {
		h := b.data[off:]
		caplen := int(binary.LittleEndian.Uint32(h[12:]))
		fn(int64(binary.LittleEndian.Uint64(h[0:])), binary.LittleEndian.Uint32(h[8:]), h[recHeader:recHeader+caplen])
		off += recHeader + caplen
	}
}

// pool is the fixed set of batches: its size is the bound on memory between
// the readers and the writer. The batches are mapped outside the Go heap
// once, up front, so that they neither count towards the garbage
// collector's target (which would let the heap grow to twice their size)
// nor need to be scanned.
type pool struct {
	free chan *batch
}

func newPool(n int) (*pool, error) {
	p := &pool{free: make(chan *batch, n)}
	for i := 0; i < n; i++ {
		mem, err := unix.Mmap(-1, 0, batchSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			p.release()
			return nil, fmt.Errorf("capture: map %d-byte buffer: %w", batchSize, err)
		}
		p.free <- &batch{data: mem[:0]}
	}
	return p, nil
}

// release unmaps the batches in the pool; only after the capture ended.
func (p *pool) release() {
	for {
		select {
		case b := <-p.free:
			unix.Munmap(b.data[:cap(b.data)])
		default:
			return
		}
	}
}

// get returns a free batch, or nil at once if none is free.
func (p *pool) get() *batch {
	select {
	case b := <-p.free:
		return b
	default:
		return nil
	}
}

func (p *pool) put(b *batch) { p.free <- b }

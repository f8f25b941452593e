package capture

// batch carries packets of one link from its reader to the writer: their
// bytes back to back in data, their metadata in meta, and the drops the
// reader counted since its previous batch.
type batch struct {
	link  *link
	data  []byte
	meta  []meta
	drops []dropEvent
	// first is the kernel timestamp of the first packet, to bound how long
	// a batch of a quiet link waits before it is handed on.
	first int64
}

type meta struct {
	time    int64
	origLen uint32
	off     int
	len     int
}

type dropEvent struct {
	at int64
	n  uint64
}

func (b *batch) reset(l *link) {
	b.link = l
	b.data = b.data[:0]
	b.meta = b.meta[:0]
	b.drops = b.drops[:0]
	b.first = 0
}

// room reports whether n more bytes fit.
func (b *batch) room(n int) bool { return len(b.data)+n <= cap(b.data) }

func (b *batch) empty() bool { return len(b.meta) == 0 && len(b.drops) == 0 }

// pool is the fixed set of batches: its size is the bound on memory between
// the readers and the writer. Batches are allocated once, up front, so the
// memory use at full rate is the same as at the first packet.
type pool struct {
	free chan *batch
}

func newPool(n int) *pool {
	p := &pool{free: make(chan *batch, n)}
	for i := 0; i < n; i++ {
		p.free <- &batch{data: make([]byte, 0, batchSize), meta: make([]meta, 0, 4096)}
	}
	return p
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

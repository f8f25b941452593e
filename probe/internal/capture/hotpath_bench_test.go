package capture

import (
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/presscap/presscap/ringfs"
)

type discardSink struct{}

func (discardSink) Append(ringfs.Record) error           { return nil }
func (discardSink) AddDrops(uint16, int64, uint64) error { return nil }

// benchHotPath measures the per-packet path without a socket: the reader's
// copy into batches (add, send) and the writer handing them to a sink that
// keeps nothing. The socket side is the kernel's and gopacket's, the same
// before and after any change here.
func benchHotPath(b *testing.B, size int) {
	const nbatches = 32
	c := &Capture{cfg: Config{SnapLen: MaxSnap, Logf: func(string, ...any) {}}, sink: discardSink{},
		full: make(chan *batch, nbatches)}
	var err error
	if c.pool, err = newPool(nbatches); err != nil {
		b.Fatal(err)
	}
	l := &link{c: c, id: 1, ethernet: true}
	c.links = []*link{l}
	data := make([]byte, size)
	ci := gopacket.CaptureInfo{Length: size, CaptureLength: size}
	ts := time.Now().UnixNano()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ts += 1000
		l.add(data, &ci, ts)
		// The writer's share, in the same goroutine so that the figure is
		// the whole per-packet cost and no packet is dropped.
		for len(c.full) > 0 {
			c.writeBatch(<-c.full)
		}
	}
	l.send()
	for len(c.full) > 0 {
		c.writeBatch(<-c.full)
	}
	b.StopTimer()
	if l.backlogDrops.Load() != 0 {
		b.Fatalf("%d backlog drops", l.backlogDrops.Load())
	}
	if l.cur != nil {
		c.pool.put(l.cur)
	}
	c.pool.release()
}

func BenchmarkHotPath64(b *testing.B)   { benchHotPath(b, 64) }
func BenchmarkHotPath1400(b *testing.B) { benchHotPath(b, 1400) }

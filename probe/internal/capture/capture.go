// Package capture records packets from one or more network interfaces into
// a packet sink (the on-disk ring) with AF_PACKET TPACKET_V3 sockets.
//
// Each link has its own socket with the ring rules attached as a kernel BPF
// program, so discarded packets never reach userspace and sliced packets
// are cut by the kernel. A reader goroutine per link copies packets out of
// the socket's memory-mapped ring into fixed-size batches; one writer
// goroutine hands the batches to the sink. The batches form a bounded pool:
// when the sink stalls (a slow or busy disk) the readers keep emptying the
// kernel rings into the pool, and when the pool is exhausted they count the
// packets they cannot keep as backlog drops instead of blocking, so the
// capture itself never stops. Kernel drops (socket statistics) and backlog
// drops are handed to the sink by time.
//
// Frames are stored as the wire carried them: the VLAN tag the kernel
// strips into packet metadata is put back, as libpcap does. Timestamps are
// the kernel's, in nanoseconds.
//
// An interface that goes down is brought back up; one that disappears (a
// USB adapter unplugged) is reopened when it reappears.
//
// Use: register the links with the ring (AddLinks), compile the rules
// (CompileRules or CompileFilter), then New and Run until the context ends;
// Stats may be read meanwhile.
package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/bpf"

	"github.com/presscap/presscap/ringfs"
)

// Sink receives the captured packets. Capture calls it from one goroutine
// only. Append must not keep r.Data after it returns.
type Sink interface {
	Append(r ringfs.Record) error
	// AddDrops records n packets lost on link at time at (Unix ns).
	AddDrops(link uint16, at int64, n uint64) error
}

// Link names an interface and the link id its records carry.
type Link struct {
	Name string
	ID   uint16
	// Inbound records only the frames that arrive on the interface, not
	// those it sends. On the ports of a bridge every crossing frame is
	// then recorded once, on the link of the side it came from.
	Inbound bool
	// NotTo, if not zero, is a destination MAC address whose frames are
	// not recorded: the probe's own bridge's, so that with Inbound nothing
	// of the probe's own traffic is (network.record_own off).
	NotTo [6]byte
}

// Config configures a capture.
type Config struct {
	Links []Link
	// Program is the kernel BPF program attached to every socket: its return
	// value is the number of bytes to keep, 0 discards (see CompileRules).
	// Nil keeps every packet cut to SnapLen.
	Program []bpf.Instruction
	// SnapLen is the largest number of bytes kept of any packet (the largest
	// snap length Program returns); 0 means MaxSnap.
	SnapLen int
	// SocketBuffer is the size of each socket's kernel ring in bytes. The
	// default shares 32 MiB among the links, at least 4 MiB each: the ring
	// is what absorbs the moments the reader does not run (another process
	// or the hypervisor holding its CPU), and 32 MiB is about 100 ms at
	// 700k pps of a 372-byte mix, twice what tcpdump's -B 16384 holds, while
	// the process stays within its 96 MiB budget.
	SocketBuffer int
	// Buffer is the total size of the in-memory batches between the readers
	// and the writer in bytes (default 32 MiB).
	Buffer int
	// KeepGRO leaves generic receive offload as it is. By default the
	// capture turns it off on Ethernet links, so that TCP segments are
	// recorded as they were received, not merged into large packets.
	KeepGRO bool
	// WaitForLinks makes Run wait for missing interfaces instead of failing,
	// for a service started before its USB adapters are plugged in.
	WaitForLinks bool
	// Logf, if set, receives notable events (link gone, reopened, brought up,
	// sink errors).
	Logf func(format string, args ...any)
}

// MaxSnap is the snap length meaning "whole packet" (tcpdump's default).
const MaxSnap = 262144

const (
	defaultSocketBuffer = 32 << 20
	defaultBuffer       = 32 << 20
	batchSize           = 1 << 20
	blockSize           = 1 << 20
	// blockTimeout is how long the kernel waits before handing over a
	// partly filled block: the latency of a quiet link.
	blockTimeout = 50 * time.Millisecond
	// pollTimeout bounds how long a reader sleeps without looking at its
	// context and its interface. It must exceed two blockTimeouts: a read
	// that times out then proves the socket held nothing older than the
	// read (see publishIdle).
	pollTimeout = 200 * time.Millisecond
	// statsInterval is how often socket drops are collected and stored.
	statsInterval = time.Second
	// reopenInterval is how often a missing interface is looked for.
	reopenInterval = 500 * time.Millisecond
	// drainLimit bounds the time spent emptying the sockets at shutdown.
	drainLimit = 2 * time.Second
)

// LinkStats counts one link's packets.
type LinkStats struct {
	Name string
	ID   uint16
	// Seen is what the kernel counted on the socket: packets the rules
	// kept, including those it then dropped for lack of ring space.
	Seen uint64
	// KernelDrops are packets the kernel dropped because the socket's ring
	// was full.
	KernelDrops uint64
	// BacklogDrops are packets read from the socket but lost because the
	// in-memory buffer was full (the sink too slow).
	BacklogDrops uint64
	// WriteDrops are packets the sink refused (Append returned an error).
	WriteDrops uint64
	// Written are packets the sink accepted, and Bytes their captured bytes.
	Written uint64
	Bytes   uint64
	// Reopens counts how often the interface disappeared and came back.
	Reopens uint64
	// Open is true while the link's socket is open and bound (false while
	// its interface is missing).
	Open bool
	// VLANGuesses counts tagged packets whose tag could not be read from
	// the kernel's packet header and was rebuilt from the VLAN id alone
	// (priority and TPID lost). Never seen; counted to be sure.
	VLANGuesses uint64
}

// Dropped is the total of all drops.
func (s LinkStats) Dropped() uint64 { return s.KernelDrops + s.BacklogDrops + s.WriteDrops }

// Capture is a running capture; see Run.
type Capture struct {
	cfg   Config
	sink  Sink
	links []*link
	pool  *pool
	full  chan *batch
	// sinkErr is the last error the sink returned, for Err.
	mu      sync.Mutex
	sinkErr error
}

// New validates cfg and returns a capture ready to Run. It opens every
// interface, so that a bad name fails here, unless cfg.WaitForLinks.
func New(cfg Config, sink Sink) (*Capture, error) {
	if len(cfg.Links) == 0 {
		return nil, errors.New("capture: no links")
	}
	seen := map[string]bool{}
	ids := map[uint16]bool{}
	for _, l := range cfg.Links {
		if l.Name == "" {
			return nil, errors.New("capture: empty interface name")
		}
		if len(l.Name) > 15 {
			return nil, fmt.Errorf("capture: interface name %q longer than 15 bytes", l.Name)
		}
		if seen[l.Name] {
			return nil, fmt.Errorf("capture: interface %q named twice", l.Name)
		}
		if ids[l.ID] {
			return nil, fmt.Errorf("capture: link id %d used twice", l.ID)
		}
		seen[l.Name], ids[l.ID] = true, true
	}
	if cfg.SnapLen <= 0 || cfg.SnapLen > MaxSnap {
		cfg.SnapLen = MaxSnap
	}
	if cfg.SocketBuffer <= 0 {
		cfg.SocketBuffer = max(defaultSocketBuffer/len(cfg.Links)/blockSize*blockSize, 4<<20)
	}
	if cfg.SocketBuffer < 2*blockSize {
		return nil, fmt.Errorf("capture: socket buffer %d bytes: need at least %d", cfg.SocketBuffer, 2*blockSize)
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = defaultBuffer
	}
	nbatches := cfg.Buffer / batchSize
	if nbatches < 2*len(cfg.Links) {
		return nil, fmt.Errorf("capture: buffer %d bytes: need at least %d for %d links", cfg.Buffer, 2*len(cfg.Links)*batchSize, len(cfg.Links))
	}
	prog := cfg.Program
	if prog == nil {
		prog = []bpf.Instruction{bpf.RetConstant{Val: uint32(cfg.SnapLen)}}
	}
	raw, err := assemble(prog)
	if err != nil {
		return nil, err
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	c := &Capture{
		cfg:  cfg,
		sink: sink,
		full: make(chan *batch, nbatches),
	}
	for _, l := range cfg.Links {
		ln := &link{c: c, name: l.Name, id: l.ID, inbound: l.Inbound, prog: raw}
		if l.NotTo != [6]byte{} {
			if ln.prog, err = assemble(append(notTo(l.NotTo), prog...)); err != nil {
				return nil, fmt.Errorf("link %s: %w", l.Name, err)
			}
		}
		c.links = append(c.links, ln)
	}
	if !cfg.WaitForLinks {
		for _, l := range c.links {
			if err := l.open(); err != nil {
				c.closeAll()
				return nil, err
			}
		}
	}
	if c.pool, err = newPool(nbatches); err != nil {
		c.closeAll()
		return nil, err
	}
	return c, nil
}

func (c *Capture) closeAll() {
	for _, l := range c.links {
		l.close()
	}
}

// Run captures until ctx is cancelled, then empties the sockets (packets
// the kernel took before the cancellation are still written), hands
// everything to the sink and returns. It returns an error only if it could
// not capture at all; sink errors are counted as WriteDrops (see Err).
func (c *Capture) Run(ctx context.Context) error {
	var readers sync.WaitGroup
	for _, l := range c.links {
		readers.Add(1)
		go func() {
			defer readers.Done()
			l.run(ctx)
		}()
	}
	done := make(chan struct{})
	go func() {
		c.write()
		close(done)
	}()
	readers.Wait()
	close(c.full)
	<-done
	c.closeAll()
	// Every batch is back in the pool: held ones were handed on by finish
	// or are empty and still referenced by their link.
	for _, l := range c.links {
		if l.cur != nil {
			c.pool.put(l.cur)
			l.cur = nil
		}
	}
	c.pool.release()
	return nil
}

// write hands batches to the sink until the readers are done.
func (c *Capture) write() {
	for b := range c.full {
		c.writeBatch(b)
	}
}

// writeBatch hands one batch to the sink and returns it to the pool.
func (c *Capture) writeBatch(b *batch) {
	l := b.link
	for _, d := range b.drops {
		if err := c.sink.AddDrops(l.id, d.at, d.n); err != nil {
			c.noteSinkErr(l, err)
		}
	}
	var written, bytes, failed uint64
	b.each(func(ts int64, origLen uint32, data []byte) {
		err := c.sink.Append(ringfs.Record{Time: ts, Link: l.id, OrigLen: origLen, Data: data})
		if err != nil {
			failed++
			c.noteSinkErr(l, err)
			return
		}
		written++
		bytes += uint64(len(data))
	})
	l.written.Add(written)
	l.bytes.Add(bytes)
	if failed > 0 {
		l.writeDrops.Add(failed)
	}
	if b.mark > l.writtenMark.Load() {
		l.writtenMark.Store(b.mark)
	}
	l.handed.Add(1)
	c.pool.put(b)
}

func (c *Capture) noteSinkErr(l *link, err error) {
	c.mu.Lock()
	first := c.sinkErr == nil || c.sinkErr.Error() != err.Error()
	c.sinkErr = err
	c.mu.Unlock()
	if first {
		c.cfg.Logf("capture %s: sink: %v", l.name, err)
	}
}

// WrittenUntil returns a time up to which the sink holds every packet the
// kernel timestamped on any link, apart from counted drops (kernel,
// backlog and sink errors: lost, not pending). A link whose interface is
// missing holds nothing and does not hold it back. On a quiet link it runs
// a few hundred milliseconds behind the clock (markSlack plus one or two
// idle reads); on a busy one about markSlack behind the newest packet the
// sink has taken.
func (c *Capture) WrittenUntil() time.Time {
	now := time.Now().UnixNano()
	until := now
	for _, l := range c.links {
		until = min(until, l.writtenUntil(now))
	}
	return time.Unix(0, until)
}

// WaitWritten waits until the sink holds every packet the kernel
// timestamped at or before t (see WrittenUntil), or ctx ends; it then
// returns a *NotWrittenError that wraps ctx's and says how far the sink
// got. Packets
// between the socket and the sink sit in the kernel's socket ring (a block
// is handed over when full or blockTimeout after it opened) and in the
// batches waiting for the writer, which a stalled disk holds back.
func (c *Capture) WaitWritten(ctx context.Context, t time.Time) error {
	if !c.WrittenUntil().Before(t) {
		return nil
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			w := c.WrittenUntil()
			if !w.Before(t) {
				return nil
			}
			return &NotWrittenError{Until: w, Want: t, Err: ctx.Err()}
		case <-tick.C:
			if !c.WrittenUntil().Before(t) {
				return nil
			}
		}
	}
}

// NotWrittenError is WaitWritten's error when its context ends first: the
// sink held every packet up to Until, short of Want.
type NotWrittenError struct {
	Until, Want time.Time
	Err         error // the context's
}

func (e *NotWrittenError) Error() string {
	return fmt.Sprintf("capture: sink written up to %s, %v short of %s: %v",
		e.Until.UTC().Format(time.RFC3339Nano), e.Want.Sub(e.Until).Round(time.Millisecond), e.Want.UTC().Format(time.RFC3339Nano), e.Err)
}

func (e *NotWrittenError) Unwrap() error { return e.Err }

// Err returns the last error the sink returned, if any.
func (c *Capture) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sinkErr
}

// Stats returns the counters of every link, in Config.Links order. It may be
// called at any time, also while Run is running.
func (c *Capture) Stats() []LinkStats {
	out := make([]LinkStats, len(c.links))
	for i, l := range c.links {
		out[i] = LinkStats{
			Name:         l.name,
			ID:           l.id,
			Seen:         l.seen.Load(),
			KernelDrops:  l.kernelDrops.Load(),
			BacklogDrops: l.backlogDrops.Load(),
			WriteDrops:   l.writeDrops.Load(),
			Written:      l.written.Load(),
			Bytes:        l.bytes.Load(),
			Reopens:      l.reopens.Load(),
			Open:         l.isOpen.Load(),
			VLANGuesses:  l.vlanGuesses.Load(),
		}
	}
	return out
}

// counters are a link's statistics, updated by its reader and the writer.
type counters struct {
	seen, kernelDrops, backlogDrops, writeDrops atomic.Uint64
	written, bytes, reopens                     atomic.Uint64
	vlanGuesses                                 atomic.Uint64
	isOpen                                      atomic.Bool
	// checks counts the looks at the interface (periodic), so a test
	// knows that one fell inside a condition it set up.
	checks atomic.Uint64
}

// LinkAdder registers links; *ringfs.Ring is one.
type LinkAdder interface {
	AddLink(l ringfs.Link) (uint16, error)
}

// AddLinks registers interfaces with the ring and returns them as
// Config.Links. An interface that does not exist yet (a USB adapter still
// to be plugged in) is registered as Ethernet unless mustExist.
func AddLinks(r LinkAdder, names []string, snapLen int, mustExist bool) ([]Link, error) {
	if snapLen <= 0 || snapLen > MaxSnap {
		snapLen = MaxSnap
	}
	var links []Link
	for _, name := range names {
		lt, err := LinkType(name)
		if err != nil {
			if mustExist {
				return nil, fmt.Errorf("capture: %w", err)
			}
			lt = LinkTypeEthernet
		}
		id, err := r.AddLink(ringfs.Link{Name: name, LinkType: lt, SnapLen: uint32(snapLen)})
		if err != nil {
			return nil, fmt.Errorf("capture: register link %s in the ring: %w", name, err)
		}
		links = append(links, Link{Name: name, ID: id})
	}
	return links, nil
}

// assemble makes the kernel's program of prog.
func assemble(prog []bpf.Instruction) ([]bpf.RawInstruction, error) {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("capture: assemble filter program: %w", err)
	}
	if raw, err = adjustVLANSnap(raw); err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	return raw, nil
}

// notTo is the start of a program that discards frames addressed to mac
// and goes on with A = 0, as a program starts, for any other.
func notTo(mac [6]byte) []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadAbsolute{Off: 0, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: binary.BigEndian.Uint32(mac[:4]), SkipTrue: 3},
		bpf.LoadAbsolute{Off: 4, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(binary.BigEndian.Uint16(mac[4:])), SkipTrue: 1},
		bpf.RetConstant{Val: 0},
		bpf.LoadConstant{Dst: bpf.RegA, Val: 0},
	}
}

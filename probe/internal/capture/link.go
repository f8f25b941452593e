package capture

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/afpacket"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// link is one interface's socket and reader.
type link struct {
	c    *Capture
	name string
	id   uint16
	// inbound ignores what the interface sends (Link.Inbound).
	inbound bool
	prog    []bpf.RawInstruction
	counters
	progress

	tp       *afpacket.TPacket
	fd       int
	ifindex  int
	ethernet bool
	// base* hold the socket counters of sockets closed before (reopens).
	baseSeen, baseDrops uint64
	lastDrops           uint64

	// received counts the packets read from the socket(s).
	received uint64

	cur     *batch
	pending []dropEvent
	// backlog is the open run of backlog drops, if any.
	backlog *dropEvent

	lastStats, lastCheck time.Time
	openErr, groErr      string
	// checkErr is the last error of the periodic interface check that did
	// not mean the interface was gone (logged once).
	checkErr string
}

// open opens the socket: bound to no protocol first, so that nothing is
// queued before the filter is attached (libpcap avoids the same race by
// other means), then filter, promiscuous mode, and only then the real bind.
func (l *link) open() error {
	// The new socket holds nothing timestamped before now: the kernel only
	// queues packets on it once it is bound.
	opened := time.Now()
	info, err := lookupIface(l.name)
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	if !info.up {
		if err := setUp(l.name); err != nil {
			return fmt.Errorf("capture: %w", err)
		}
		l.c.cfg.Logf("capture %s: interface was down, brought it up", l.name)
	}
	if !l.c.cfg.KeepGRO && info.linkType == LinkTypeEthernet {
		changed, err := disableGRO(l.name)
		switch {
		case err != nil:
			// Not fatal: some drivers have no GRO switch; their frames are
			// captured as the kernel passes them.
			if l.groErr != err.Error() {
				l.c.cfg.Logf("capture %s: %v", l.name, err)
				l.groErr = err.Error()
			}
		case changed:
			l.c.cfg.Logf("capture %s: turned generic receive offload off, so frames are captured as received", l.name)
		}
	}
	tp, err := afpacket.NewTPacket(
		afpacket.OptInterface(l.name),
		afpacket.OptProtocol(0),
		afpacket.OptTPacketVersion(afpacket.TPacketVersion3),
		afpacket.OptFrameSize(afpacket.DefaultFrameSize),
		afpacket.OptBlockSize(blockSize),
		afpacket.OptNumBlocks(l.c.cfg.SocketBuffer/blockSize),
		afpacket.OptBlockTimeout(blockTimeout),
		afpacket.OptPollTimeout(pollTimeout),
		// The capture puts VLAN tags back itself (vlanFromHeader), without
		// gopacket's copy of every tagged frame.
		afpacket.OptAddVLANHeader(false),
	)
	if err != nil {
		return fmt.Errorf("capture: open AF_PACKET socket on %s: %w", l.name, err)
	}
	fd, err := socketFD(tp)
	if err != nil {
		tp.Close()
		return fmt.Errorf("capture %s: %w", l.name, err)
	}
	if err := tp.SetBPF(l.prog); err != nil {
		tp.Close()
		return fmt.Errorf("capture: attach filter to %s: %w", l.name, err)
	}
	// The kernel then never hands the socket a sent frame, at no cost
	// (Linux 4.20; what tcpdump -Q in does with a filter per packet).
	if l.inbound {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			tp.Close()
			return fmt.Errorf("capture: inbound only on %s: %w", l.name, err)
		}
	}
	if err := tp.SetPromiscuous(true); err != nil {
		tp.Close()
		return fmt.Errorf("capture: promiscuous mode on %s: %w", l.name, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: info.index}); err != nil {
		tp.Close()
		return fmt.Errorf("capture: bind to %s: %w", l.name, err)
	}
	l.tp, l.fd, l.ifindex = tp, fd, info.index
	l.isOpen.Store(true)
	l.ethernet = info.linkType == LinkTypeEthernet
	l.lastDrops = 0
	l.publishIdle(opened)
	return nil
}

// socketFD returns the socket of a TPacket, which gopacket does not export
// but which the capture needs for the late bind and to clear socket errors.
// It checks that what it found is an AF_PACKET socket, so that a change in
// gopacket fails loudly instead of touching another descriptor.
func socketFD(tp *afpacket.TPacket) (int, error) {
	f := reflect.ValueOf(tp).Elem().FieldByName("fd")
	if !f.IsValid() || f.Kind() != reflect.Int {
		return -1, errors.New("gopacket afpacket.TPacket has no int field fd")
	}
	fd := int(f.Int())
	dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil || dom != unix.AF_PACKET {
		return -1, fmt.Errorf("gopacket afpacket.TPacket field fd=%d is not an AF_PACKET socket (domain %d, %v)", fd, dom, err)
	}
	return fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (l *link) close() {
	l.isOpen.Store(false)
	if l.tp != nil {
		l.tp.Close()
		l.tp = nil
	}
}

// run reads the link until ctx is cancelled and the socket is drained.
//
// At cancellation it reads the socket counters once more and then reads
// exactly the packets the kernel had queued by then (or until drainLimit),
// so that the final counts add up: seen = written + dropped.
func (l *link) run(ctx context.Context) {
	defer l.close()
	for l.tp == nil {
		if !l.reopen(ctx) {
			return
		}
	}
	stopping := false
	var target uint64 // packets queued by the kernel when the stop came
	var deadline time.Time
	stop := func(now time.Time) {
		stopping, deadline = true, now.Add(drainLimit)
		l.collectStats(now)
		target = l.seen.Load() - l.kernelDrops.Load()
	}
	n := 0
	var lastTick int64
	// measured is a time taken before the current read began: when that
	// read times out, every packet timestamped before it has been read
	// (see publishIdle).
	measured := time.Now()
	for {
		if stopping && (l.received >= target || time.Now().After(deadline)) {
			l.finish()
			return
		}
		data, ci, err := l.tp.ZeroCopyReadPacketData()
		if err != nil {
			now := time.Now()
			switch {
			case errors.Is(err, afpacket.ErrTimeout):
				l.send()
				l.publishIdle(measured)
				if stopping {
					l.finish()
					return
				}
			default:
				// ErrPoll: the kernel reported a socket error (ENETDOWN when the
				// interface went down or away). Clear it so poll blocks again,
				// and look at the interface now.
				unix.GetsockoptInt(l.fd, unix.SOL_SOCKET, unix.SO_ERROR)
				l.lastCheck = time.Time{}
				// Never spin on an error that does not go away.
				time.Sleep(5 * time.Millisecond)
			}
			measured = now
			if !stopping && !l.periodic(ctx, now) {
				return
			}
			if !stopping && ctx.Err() != nil {
				stop(now)
			}
			continue
		}
		ts := ci.Timestamp.UnixNano()
		l.received++
		l.add(data, &ci, ts)
		// Look at the clock, the context and the interface every 100 ms of
		// packet time or every 4096 packets, not for every packet.
		n++
		if !stopping && (n >= 4096 || ts-lastTick > int64(100*time.Millisecond) || ts < lastTick) {
			n, lastTick = 0, ts
			now := time.Now()
			measured = now
			if !l.periodic(ctx, now) {
				return
			}
			if ctx.Err() != nil {
				stop(now)
			}
		}
	}
}

// finish hands over the last packets and counters.
func (l *link) finish() {
	l.send()
	l.flushPending()
}

// periodic collects socket statistics and checks that the interface is
// still the one the socket is bound to. When it is gone it drains and
// closes the socket and waits for the interface to come back; it returns
// false if ctx ended meanwhile.
func (l *link) periodic(ctx context.Context, now time.Time) bool {
	if now.Sub(l.lastStats) >= statsInterval {
		l.collectStats(now)
		l.lastStats = now
	}
	if now.Sub(l.lastCheck) < time.Second {
		return true
	}
	l.lastCheck = now
	defer l.checks.Add(1)
	// On the packet socket itself: a process out of descriptors (a flood of
	// connections elsewhere) must not make the check fail.
	info, err := lookupIfaceOn(l.fd, l.name)
	if err != nil && shortage(err) {
		if l.checkErr != err.Error() {
			l.c.cfg.Logf("capture %s: cannot look at the interface: %v (capturing on, looking again every second)", l.name, err)
			l.checkErr = err.Error()
		}
		return true
	}
	l.checkErr = ""
	if err == nil && info.index == l.ifindex {
		if !info.up {
			if err := setUp(l.name); err != nil {
				l.c.cfg.Logf("capture %s: %v", l.name, err)
			} else {
				l.c.cfg.Logf("capture %s: interface went down, brought it back up", l.name)
			}
		}
		return true
	}
	l.c.cfg.Logf("capture %s: interface gone, waiting for it to come back", l.name)
	l.drain()
	l.collectStats(time.Now())
	l.send()
	l.flushPending()
	l.baseSeen = l.seen.Load()
	l.baseDrops = l.kernelDrops.Load()
	l.close()
	for l.tp == nil {
		if !l.reopen(ctx) {
			return false
		}
	}
	l.reopens.Add(1)
	l.c.cfg.Logf("capture %s: interface back, capturing again", l.name)
	return true
}

// drain reads what the socket still holds after its interface vanished.
func (l *link) drain() {
	deadline := time.Now().Add(drainLimit)
	for time.Now().Before(deadline) {
		data, ci, err := l.tp.ZeroCopyReadPacketData()
		if errors.Is(err, afpacket.ErrTimeout) {
			return
		}
		if err != nil {
			unix.GetsockoptInt(l.fd, unix.SOL_SOCKET, unix.SO_ERROR)
			continue
		}
		l.received++
		l.add(data, &ci, ci.Timestamp.UnixNano())
	}
}

// reopen tries to open the interface until it succeeds or ctx ends.
func (l *link) reopen(ctx context.Context) bool {
	for {
		if ctx.Err() != nil {
			return false
		}
		err := l.open()
		if err == nil {
			l.openErr = ""
			return true
		}
		if err.Error() != l.openErr {
			l.c.cfg.Logf("%v (retrying)", err)
			l.openErr = err.Error()
		}
		t := time.NewTimer(reopenInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// collectStats reads the socket counters (which reading resets; gopacket
// accumulates them) and queues new kernel drops for the sink.
func (l *link) collectStats(now time.Time) {
	if l.tp == nil {
		return
	}
	_, s3, err := l.tp.SocketStats()
	if err != nil {
		l.c.cfg.Logf("capture %s: socket statistics: %v", l.name, err)
		return
	}
	drops := uint64(s3.Drops())
	l.seen.Store(l.baseSeen + uint64(s3.Packets()))
	l.kernelDrops.Store(l.baseDrops + drops)
	if drops > l.lastDrops {
		l.pending = append(l.pending, dropEvent{at: now.UnixNano(), n: drops - l.lastDrops})
		l.lastDrops = drops
	}
}

// add copies one packet into the current batch, putting back the VLAN tag
// the kernel stripped, as libpcap does: TPID and TCI from the kernel's
// packet header, behind the two MAC addresses. The program cut a tagged
// packet 4 bytes short (adjustVLANSnap), so with its tag back it is cut
// where the snap length says.
func (l *link) add(data []byte, ci *gopacket.CaptureInfo, ts int64) {
	caplen, orig := len(data), ci.Length
	var tag [4]byte
	insert := false
	if l.ethernet && len(data) >= 12 {
		if vid, ok := hasVLAN(ci); ok {
			tci, tpid, found := vlanFromHeader(data)
			if !found {
				// Never seen; keep the VLAN id gopacket reported rather than
				// lose the tag.
				tci, tpid = uint16(vid), 0
				l.vlanGuesses.Add(1)
			}
			if tpid == 0 {
				tpid = 0x8100 // kernels before 3.14 do not report it
			}
			tag = [4]byte{byte(tpid >> 8), byte(tpid), byte(tci >> 8), byte(tci)}
			insert = true
			caplen += 4
			orig += 4
		}
	}
	if caplen > l.c.cfg.SnapLen {
		caplen = l.c.cfg.SnapLen
	}
	if l.cur == nil || !l.cur.room(caplen) {
		l.send()
		if !l.take(ts) {
			l.dropBacklog(ts)
			return
		}
	}
	b := l.cur
	dst := b.add(ts, uint32(orig), caplen)
	if insert {
		n := copy(dst, data[:12])
		n += copy(dst[n:], tag[:])
		copy(dst[n:], data[12:])
	} else {
		copy(dst, data)
	}
	if b.first == 0 {
		b.first = ts
	}
	b.last = ts
	if ts-b.first > int64(100*time.Millisecond) {
		l.send()
	}
}

// take gets a fresh batch from the pool; false if none is free.
func (l *link) take(ts int64) bool {
	b := l.c.pool.get()
	if b == nil {
		return false
	}
	b.reset(l)
	l.handOverDrops(b)
	l.cur = b
	return true
}

// handOverDrops moves the drop events waiting for a batch (the pending
// ones and the open backlog run) into b.
func (l *link) handOverDrops(b *batch) {
	if l.backlog == nil && len(l.pending) == 0 {
		return
	}
	if l.backlog != nil {
		l.pending = append(l.pending, *l.backlog)
		l.backlog = nil
	}
	b.drops = append(b.drops, l.pending...)
	l.pending = l.pending[:0]
}

func (l *link) dropBacklog(ts int64) {
	l.backlogDrops.Add(1)
	if l.backlog == nil {
		l.backlog = &dropEvent{at: ts}
	}
	l.backlog.n++
}

// send hands the current batch to the writer.
func (l *link) send() {
	if l.cur == nil {
		return
	}
	l.handOverDrops(l.cur)
	if l.cur.empty() {
		return // keep it for the next packets
	}
	if l.cur.n > 0 {
		// The kernel fills its ring in the order it receives, so every
		// packet received before this batch's last one has been read (or
		// counted as dropped), up to the reordering markSlack allows for.
		l.cur.mark = l.cur.last - int64(markSlack)
	}
	l.queued.Add(1)
	// Never blocks: the channel holds every batch there is.
	l.c.full <- l.cur
	l.cur = nil
}

// flushPending makes sure queued drop counts reach the sink even when no
// packet follows them.
func (l *link) flushPending() {
	if l.backlog == nil && len(l.pending) == 0 {
		return
	}
	if l.cur == nil && !l.take(0) {
		return // still no room; they go with the next batch
	}
	l.send()
}

// progress tells how far a link's packets have got towards the sink, for
// WaitWritten. The reader counts the batches it hands on (queued) and
// publishes idle marks; the writer counts the batches it finished (handed)
// and the mark of the last one. Each is updated once per batch or per idle
// read, never per packet.
type progress struct {
	queued, handed atomic.Uint64
	// writtenMark: the sink holds every packet of the link timestamped at
	// or before it (Unix ns), apart from counted drops.
	writtenMark atomic.Int64
	// idleMark, idleSeq: every packet timestamped at or before idleMark has
	// been read and is in the first idleSeq batches queued, or was dropped.
	idleMark atomic.Int64
	idleSeq  atomic.Uint64
}

// markSlack is how far the kernel's timestamps may run ahead of the order
// in which packets enter the socket's ring: the timestamp can be taken when
// a packet is queued for the receiving CPU, before the packet socket sees
// it, and several CPUs fill the ring at once. 100 ms is far beyond both.
//
// The marks (and so WrittenUntil and WaitWritten) assume it: a packet
// reaches the socket's ring within markSlack of its kernel timestamp, and
// an idle read proves quiet because a packet queued before it began would
// have been handed over within 2*blockTimeout (see publishIdle). A packet
// later than that (a CPU stalled between timestamp and socket) is not
// waited for: a window saved meanwhile lacks it, and nothing reports it
// (no capture_not_caught_up).
const markSlack = 100 * time.Millisecond

// publishIdle records that a read which began after t timed out with every
// batch handed on. A TPACKET_V3 read waits for a block the kernel retires
// when it is full or blockTimeout after it was opened (at most two timer
// periods); a packet received before the read began that was not read yet
// would therefore have woken it within 2*blockTimeout < pollTimeout. So a
// read that timed out proves the socket held nothing timestamped before t.
func (l *link) publishIdle(t time.Time) {
	m := t.Add(-markSlack).UnixNano()
	if m <= l.idleMark.Load() {
		return
	}
	// The sequence first: WaitWritten reads the mark first, then the
	// sequence, and so never pairs a new mark with an old sequence.
	l.idleSeq.Store(l.queued.Load())
	l.idleMark.Store(m)
}

// writtenUntil is the time up to which the sink holds every packet of the
// link (Unix ns). A link whose socket is closed (its interface missing)
// holds nothing: once the writer has finished its batches, it is written
// up to now.
func (l *link) writtenUntil(now int64) int64 {
	if !l.isOpen.Load() && l.handed.Load() >= l.queued.Load() {
		return now
	}
	m := l.writtenMark.Load()
	if im := l.idleMark.Load(); im > m && l.handed.Load() >= l.idleSeq.Load() {
		m = im
	}
	return m
}

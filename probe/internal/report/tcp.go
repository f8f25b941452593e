package report

import (
	"net/netip"
	"sort"

	"github.com/gopacket/gopacket/layers"
)

// TCP connection analysis. Retransmissions follow Wireshark's sequence
// analysis (tcp.analysis.retransmission): a segment with data, SYN or FIN
// whose sequence number is below the highest one seen in its direction is
// a retransmission, unless it is a keep-alive or arrives within the
// out-of-order threshold (3 ms, or the handshake's RTT) of that highest
// segment without ending where it did.

type connKey struct{ a, b netip.AddrPort } // a < b

// mapKey is the connection's key in the table: fixed bytes hash faster
// than the addresses' structs.
func (k connKey) mapKey() (m [36]byte) {
	a, b := k.a.Addr().As16(), k.b.Addr().As16()
	copy(m[:16], a[:])
	m[16], m[17] = byte(k.a.Port()>>8), byte(k.a.Port())
	copy(m[18:34], b[:])
	m[34], m[35] = byte(k.b.Port()>>8), byte(k.b.Port())
	return m
}

type tcpDir struct {
	nextSeq     uint32
	haveNext    bool
	nextSeqTime int64
	lastAck     uint32
	haveAck     bool
	lastAckTime int64
	lastWin     uint16
	dupAcks     int
}

type tcpConn struct {
	key      connKey
	dir      [2]tcpDir
	client   netip.AddrPort // sender of the first SYN
	synAt    int64
	synAckAt int64
	firstRTT int64 // SYN to the ACK of the SYN-ACK
	state    uint8
	reset    bool
	lastSeen int64
	counted  bool
	retrans  uint64
}

const (
	stSyn uint8 = iota + 1
	stSynAck
	stEstablished
)

type tcpTable struct {
	max     int
	conns   map[[36]byte]*tcpConn
	stats   TCPStats
	rtts    []float64
	servers map[netip.Addr]*TCPServer
	dropped uint64

	failedSpan, retransSpan, zeroSpan span
}

func (t *tcpTable) init(max int) {
	t.max = max
	t.conns = map[[36]byte]*tcpConn{}
	t.servers = map[netip.Addr]*TCPServer{}
}

// seqLT compares sequence numbers modulo 2^32 (RFC 9293 3.4).
func seqLT(a, b uint32) bool { return int32(a-b) < 0 }

func (t *tcpTable) server(a netip.Addr) *TCPServer {
	s := t.servers[a]
	if s == nil {
		if len(t.servers) >= t.max {
			return &TCPServer{}
		}
		s = &TCPServer{Addr: a.String()}
		t.servers[a] = s
	}
	return s
}

func (t *tcpTable) add(h *layers.TCP, pi packetInfo, seglen int) {
	t.stats.Packets++
	src := netip.AddrPortFrom(pi.src, uint16(h.SrcPort))
	dst := netip.AddrPortFrom(pi.dst, uint16(h.DstPort))
	k, fwd := connKey{src, dst}, 0
	if dst.Compare(src) < 0 {
		k, fwd = connKey{dst, src}, 1
	}
	if h.RST {
		t.stats.Resets++
	}
	mk := k.mapKey()
	c := t.conns[mk]
	if c == nil {
		if len(t.conns) >= t.max {
			t.dropped++
			return
		}
		c = &tcpConn{key: k, client: src}
		t.conns[mk] = c
	}
	c.lastSeen = pi.ts
	d, rev := &c.dir[fwd], &c.dir[1-fwd]
	seq, ack := h.Seq, h.Ack
	ts := pi.ts

	switch {
	case h.SYN && !h.ACK:
		if !c.counted {
			c.counted = true
			c.client = src
			c.synAt = ts
			c.state = stSyn
			t.stats.Connections++
			t.server(dst.Addr()).Connections++
		}
	case h.SYN && h.ACK:
		if c.state == stSyn && c.synAckAt == 0 {
			c.synAckAt = ts
			c.state = stSynAck
			ms := float64(ts-c.synAt) / 1e6
			if len(t.rtts) < t.max {
				t.rtts = append(t.rtts, ms)
			}
			s := t.server(src.Addr())
			s.HandshakeMaxMs = max(s.HandshakeMaxMs, ms)
		}
	case h.ACK && c.state == stSynAck && src == c.client:
		c.state = stEstablished
		c.firstRTT = ts - c.synAt
		t.stats.Established++
	}
	if h.RST && c.counted && c.state == stSyn && !c.reset {
		c.reset = true // refused: counted as failed in the summary
	}

	if !h.SYN && !h.FIN && !h.RST && h.Window == 0 {
		t.stats.ZeroWindows++
		t.zeroSpan.add(ts)
	}
	// Duplicate ACKs in this direction (for fast retransmissions the
	// other way).
	if seglen == 0 && !h.SYN && !h.FIN && !h.RST && h.ACK && d.haveAck && ack == d.lastAck && h.Window == d.lastWin {
		d.dupAcks++
	} else if h.ACK && (!d.haveAck || ack != d.lastAck) {
		d.dupAcks = 0
	}

	keepAlive := seglen <= 1 && !h.SYN && !h.FIN && !h.RST && d.haveNext && d.nextSeq-1 == seq
	if (seglen > 0 || h.SYN || h.FIN) && !keepAlive {
		notAdvanced := d.haveNext && seqLT(seq, d.nextSeq)
		if seglen > 1 && d.haveNext && d.nextSeq-1 == seq {
			notAdvanced = false
		}
		spurious := seglen > 0 && rev.haveAck && !seqLT(rev.lastAck, seq+uint32(seglen))
		switch {
		case spurious, notAdvanced && rev.dupAcks >= 2 && rev.lastAck == seq && ts-rev.lastAckTime < 20e6:
			t.retransmission(c, k, ts)
		case notAdvanced:
			thres := int64(3e6)
			if c.firstRTT > 0 {
				thres = c.firstRTT
			}
			if ts-d.nextSeqTime < thres && d.nextSeq != seq+uint32(seglen) {
				t.stats.OutOfOrder++
			} else {
				t.retransmission(c, k, ts)
			}
		}
	}
	next := seq + uint32(seglen)
	if h.SYN || h.FIN {
		next++
	}
	if !keepAlive && (!d.haveNext || seqLT(d.nextSeq, next)) {
		d.nextSeq, d.haveNext, d.nextSeqTime = next, true, ts
	}
	if h.ACK {
		d.lastAck, d.haveAck, d.lastAckTime = ack, true, ts
	}
	d.lastWin = h.Window
}

func (t *tcpTable) retransmission(c *tcpConn, k connKey, ts int64) {
	t.stats.Retransmissions++
	t.retransSpan.add(ts)
	c.retrans++
	if c.counted {
		srv := k.a
		if srv == c.client {
			srv = k.b
		}
		t.server(srv.Addr()).Retransmissions++
	}
}

func (t *tcpTable) summary() TCPStats {
	st := t.stats
	failed := map[netip.Addr]uint64{}
	for _, c := range t.conns {
		k := c.key
		if c.counted && (c.reset && c.state == stSyn || c.synAckAt == 0) {
			st.Failed++
			srv := k.a
			if srv == c.client {
				srv = k.b
			}
			failed[srv.Addr()]++
			st.FailedConnections = append(st.FailedConnections, [2]netip.AddrPort{c.client, srv})
			t.failedSpan.add(c.synAt)
			t.failedSpan.add(c.lastSeen)
		}
	}
	sort.Slice(st.FailedConnections, func(i, j int) bool {
		a, b := st.FailedConnections[i], st.FailedConnections[j]
		if a[0] != b[0] {
			return a[0].Compare(b[0]) < 0
		}
		return a[1].Compare(b[1]) < 0
	})
	st.FailedConnections = st.FailedConnections[:min(len(st.FailedConnections), topTalkers)]
	if len(t.rtts) > 0 {
		r := append([]float64(nil), t.rtts...)
		sort.Float64s(r)
		st.HandshakeMedMs, st.HandshakeMaxMs = r[len(r)/2], r[len(r)-1]
	}
	for a, s := range t.servers {
		sv := *s
		sv.Failed += failed[a]
		st.Servers = append(st.Servers, sv)
	}
	sort.Slice(st.Servers, func(i, j int) bool {
		a, b := st.Servers[i], st.Servers[j]
		if a.Failed+a.Retransmissions != b.Failed+b.Retransmissions {
			return a.Failed+a.Retransmissions > b.Failed+b.Retransmissions
		}
		if a.Connections != b.Connections {
			return a.Connections > b.Connections
		}
		return a.Addr < b.Addr
	})
	st.Servers = st.Servers[:min(len(st.Servers), topTalkers)]
	return st
}

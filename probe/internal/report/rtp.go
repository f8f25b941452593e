package report

import (
	"encoding/binary"
	"math"
	"net/netip"
	"sort"
	"strings"
)

// RTP (RFC 3550 section 5.1) and RTCP (section 6.4) decoding, and the
// per-stream statistics tshark's RTP analysis computes: the same sequence,
// delta and jitter rules, so that the numbers compare.

// rtpHeader is the fixed part of an RTP header.
type rtpHeader struct {
	marker    bool
	pt        uint8
	seq       uint16
	timestamp uint32
	ssrc      uint32
}

// parseRTP decodes the fixed header of an RTP packet (RFC 3550 5.1); ok is
// false for anything that cannot be RTP version 2.
func parseRTP(b []byte) (h rtpHeader, ok bool) {
	if len(b) < 12 || b[0]>>6 != 2 {
		return h, false
	}
	cc := int(b[0] & 0x0f)
	if len(b) < 12+4*cc {
		return h, false
	}
	h.marker = b[1]&0x80 != 0
	h.pt = b[1] & 0x7f
	h.seq = binary.BigEndian.Uint16(b[2:])
	h.timestamp = binary.BigEndian.Uint32(b[4:])
	h.ssrc = binary.BigEndian.Uint32(b[8:])
	return h, true
}

// isRTCP reports whether b starts like an RTCP packet: version 2 and a
// packet type of SR, RR, SDES, BYE or APP (RFC 3550 12.1), the types whose
// second byte an RTP header would read as payload type 72-76.
func isRTCP(b []byte) bool {
	return len(b) >= 4 && b[0]>>6 == 2 && b[1] >= 200 && b[1] <= 204
}

// staticClock is the RTP clock rate of the static payload types
// (RFC 3551 table 4 and 5), as tshark's analysis knows them.
var staticClock = map[uint8]uint32{
	0: 8000, 1: 8000, 2: 8000, 3: 8000, 4: 8000, 5: 8000, 6: 16000, 7: 8000, 8: 8000,
	9: 8000, 10: 44100, 11: 44100, 12: 8000, 13: 8000, 14: 90000, 15: 8000, 16: 11025,
	17: 22050, 18: 8000, 19: 8000, 25: 90000, 26: 90000, 28: 90000, 31: 90000, 32: 90000,
	33: 90000, 34: 90000,
}

var staticCodec = map[uint8]string{
	0: "PCMU", 3: "GSM", 4: "G723", 8: "PCMA", 9: "G722", 10: "L16", 11: "L16", 13: "CN",
	18: "G729", 26: "JPEG", 31: "H261", 34: "H263",
}

// dynClock is the clock rate of dynamic payload types by encoding name when
// the SDP gives none, as IANA registers them.
var dynClock = map[string]uint32{
	"amr": 8000, "amr-wb": 16000, "evs": 16000, "g7221": 16000, "g726-32": 8000,
	"h264": 90000, "h263-1998": 90000, "vp8": 90000, "opus": 48000, "ilbc": 8000, "speex": 8000,
}

const (
	ptCN    = 13
	ptCNOld = 19
)

type streamKey struct {
	src, dst netip.AddrPort
	ssrc     uint32
}

// codec is one rtpmap entry of an SDP.
type codec struct {
	name string
	rate uint32
}

// media is what an SDP said about one address and port.
type media struct {
	callID string
	codecs map[uint8]codec
}

type rtpStream struct {
	key                 streamKey
	callID              string
	fromSDP             bool
	codecs              map[uint8]codec
	first, last         int64
	total, dups         uint64
	sequence            uint64
	startSeq, stopSeq   uint32
	seqNum              uint32
	cycles              uint32
	under               bool
	pt, firstPT         uint8
	clock               uint32
	firstTS, ts         uint32
	timeMs, lastNominal float64
	delta, jitter       float64
	maxDelta, maxJitter float64
	meanJitter          float64
}

type rtpTable struct {
	max     int
	streams map[streamKey]*rtpStream
	media   map[netip.AddrPort]*media
	dropped uint64
	rtcp    RTCPStats
	first   int64
	// cand holds the first packet of each would-be heuristic stream: one
	// is made only when the next packet follows in sequence, so that
	// encrypted or random UDP that happens to start like RTP does not
	// fill the table with one-packet "streams" of 100 % loss.
	cand map[streamKey]candidate
}

type candidate struct {
	h  rtpHeader
	ts int64
}

// maxCandidates bounds the would-be streams; the table is emptied when
// full (a flood of random UDP), which only delays a real stream by a
// packet.

func (t *rtpTable) init(max int) {
	t.max = max
	t.streams = map[streamKey]*rtpStream{}
	t.media = map[netip.AddrPort]*media{}
	t.cand = map[streamKey]candidate{}
}

const maxCandidates = 1024

// announce records an SDP media address, so that RTP to or from it is
// recognised (and RTCP on the next port).
func (t *rtpTable) announce(ap netip.AddrPort, m *media) {
	if len(t.media) >= 4*t.max {
		return
	}
	t.media[ap] = m
}

// add takes one UDP payload that is not DNS, SIP or DHCP.
func (t *rtpTable) add(b []byte, pi packetInfo, src, dst netip.AddrPort, heuristic bool) {
	m := t.media[dst]
	if m == nil {
		m = t.media[src]
	}
	if m == nil {
		// RTCP goes to the media port plus one.
		rm := t.media[netip.AddrPortFrom(dst.Addr(), dst.Port()-1)]
		if rm == nil {
			rm = t.media[netip.AddrPortFrom(src.Addr(), src.Port()-1)]
		}
		if rm != nil || (heuristic && heuristicPorts(src, dst)) {
			if isRTCP(b) {
				t.addRTCP(b)
				return
			}
		}
		if !heuristic || !heuristicPorts(src, dst) {
			return
		}
	} else if isRTCP(b) {
		t.addRTCP(b)
		return
	}
	h, ok := parseRTP(b)
	if !ok || (m == nil && h.pt >= 72 && h.pt <= 76) {
		return
	}
	if t.first == 0 {
		t.first = pi.ts
	}
	k := streamKey{src, dst, h.ssrc}
	s := t.streams[k]
	var first *candidate
	if s == nil && m == nil {
		c, ok := t.cand[k]
		if !ok || h.seq != c.h.seq+1 {
			if len(t.cand) >= maxCandidates {
				clear(t.cand)
			}
			t.cand[k] = candidate{h, pi.ts}
			return
		}
		delete(t.cand, k)
		first = &c
	}
	if s == nil {
		if len(t.streams) >= t.max {
			t.dropped++
			return
		}
		s = &rtpStream{key: k, first: pi.ts}
		if m != nil {
			s.callID, s.codecs, s.fromSDP = m.callID, m.codecs, true
		}
		t.streams[k] = s
		if first != nil {
			s.first = first.ts
			s.add(first.h, first.ts)
		}
	}
	s.add(h, pi.ts)
}

// heuristicPorts excludes the well-known ports and the unprivileged ones
// that carry other version-2-looking protocols (mDNS, SSDP, STUN).
func heuristicPorts(src, dst netip.AddrPort) bool {
	for _, p := range []uint16{src.Port(), dst.Port()} {
		switch {
		case p < 1024, p == 1900, p == 3478, p == 5349, p == 5353, p == 5355, p == 4500:
			return false
		}
	}
	return true
}

// clockRate is the RTP clock of payload type pt, 0 if it is unknown (then
// tshark computes no jitter) or a telephone event (its timestamps stand).
func (s *rtpStream) clockRate(pt uint8) uint32 {
	if pt < 96 {
		return staticClock[pt]
	}
	c, ok := s.codecs[pt]
	if !ok {
		return 0
	}
	name := strings.ToLower(c.name)
	switch {
	case strings.HasPrefix(name, "telephone-event"):
		return 0
	case c.rate != 0:
		return c.rate
	}
	return dynClock[name]
}

// add is one packet of the stream, after tshark's rtppacket_analyse: the
// first packet only sets the start; a later one updates the sequence
// bookkeeping, the delta to the previous packet and the RFC 3550 jitter
// estimate (in ms, from arrival times and RTP timestamps), and counts for
// max delta and jitter unless it is marked, comfort noise, or has a
// timestamp that went back.
func (s *rtpStream) add(h rtpHeader, ts int64) {
	now := float64(ts-s.first) / 1e6
	s.last = max(s.last, ts)
	if s.total == 0 {
		s.startSeq, s.stopSeq, s.seqNum = uint32(h.seq), uint32(h.seq), uint32(h.seq)
		s.firstTS, s.ts = h.timestamp, h.timestamp
		s.pt, s.firstPT = h.pt, h.pt
		s.total = 1
		return
	}
	seq := uint32(h.seq)
	// A timestamp before the stream's first (modulo 2^31) is "in the past":
	// tshark keeps such a packet out of the sequence, jitter and delta.
	inTime := int32(h.timestamp-s.firstTS) >= 0
	switch {
	case !inTime:
	case seq < s.startSeq && !s.under:
		s.cycles++
		s.under = true
	case seq == 0 && s.stopSeq == 65535 && !s.under:
		s.cycles++
		s.under = true
	case seq > s.startSeq && s.under:
		s.under = false
	}
	switch {
	case inTime && s.seqNum+1 == seq:
		s.seqNum = seq
	case inTime && s.seqNum == 65535 && seq == 0:
		s.seqNum = seq
	case inTime && (s.seqNum+1 < seq || s.seqNum-seq > 0xff00):
		s.seqNum = seq
		s.sequence++
	case s.seqNum+1 > seq:
		if s.seqNum == seq {
			s.dups++
		}
		s.sequence++
	}
	cn := h.pt == ptCN || h.pt == ptCNOld
	followCN := s.pt == ptCN || s.pt == ptCNOld
	s.pt = h.pt
	clock := s.clockRate(h.pt)
	if inTime {
		if clock/1000 != 0 {
			s.clock = clock
			nominal := float64(int32(h.timestamp-s.firstTS)) / float64(clock/1000)
			expected := s.timeMs + (nominal - s.lastNominal)
			diff := math.Abs(now - expected)
			s.jitter = (15*s.jitter + diff) / 16
			s.lastNominal = nominal
		}
		s.delta = now - s.timeMs
	}
	if !h.marker && !cn && inTime && !followCN {
		s.maxDelta = max(s.maxDelta, s.delta)
		if clock/1000 != 0 {
			s.maxJitter = max(s.maxJitter, s.jitter)
			// The mean over the packets after the first, as tshark counts.
			s.meanJitter = (s.meanJitter*float64(s.total-1) + s.jitter) / float64(s.total)
		}
	}
	if inTime {
		s.timeMs = now
	}
	s.ts = h.timestamp
	s.stopSeq = seq
	s.total++
}

func (t *rtpTable) addRTCP(b []byte) {
	t.rtcp.Packets++
	// A compound packet (RFC 3550 6.1): walk the length fields.
	for len(b) >= 4 && b[0]>>6 == 2 {
		n := (int(binary.BigEndian.Uint16(b[2:])) + 1) * 4
		if n > len(b) {
			n = len(b)
		}
		pkt, rc := b[:n], int(b[0]&0x1f)
		var blocks []byte
		switch b[1] {
		case 200:
			t.rtcp.SenderReports++
			if len(pkt) >= 28 {
				blocks = pkt[28:]
			}
		case 201:
			t.rtcp.ReceiverReports++
			if len(pkt) >= 8 {
				blocks = pkt[8:]
			}
		}
		for i := 0; i < rc && len(blocks) >= 24; i++ {
			frac := float64(blocks[4]) * 100 / 256
			t.rtcp.MaxFractionLost = max(t.rtcp.MaxFractionLost, frac)
			t.rtcp.MaxJitterReported = max(t.rtcp.MaxJitterReported, binary.BigEndian.Uint32(blocks[12:]))
			blocks = blocks[24:]
		}
		b = b[n:]
	}
}

func (t *rtpTable) summary(_ int64) ([]RTPStream, RTCPStats) {
	out := make([]RTPStream, 0, len(t.streams))
	for _, s := range t.streams {
		expected := int64(s.stopSeq) + int64(s.cycles)*65536 - int64(s.startSeq) + 1
		lost := expected - int64(s.total)
		r := RTPStream{
			Src: s.key.src.String(), Dst: s.key.dst.String(), SSRC: s.key.ssrc,
			PayloadType: s.firstPT, ClockRate: s.clock, CallID: s.callID, FromSDP: s.fromSDP,
			First: stamp(s.first), Last: stamp(s.last), Packets: s.total,
			Expected: expected, Lost: lost, OutOfOrder: s.sequence, Duplicates: s.dups,
			MaxDeltaMs: s.maxDelta, MaxJitterMs: s.maxJitter, MeanJitterMs: s.meanJitter,
		}
		if expected != 0 {
			r.LostPercent = float64(lost) * 100 / float64(expected)
		}
		if c, ok := s.codecs[s.firstPT]; ok {
			r.Codec = c.name
		} else {
			r.Codec = staticCodec[s.firstPT]
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].First.Equal(out[j].First) {
			return out[i].First.Before(out[j].First)
		}
		if out[i].Src != out[j].Src {
			return out[i].Src < out[j].Src
		}
		return out[i].SSRC < out[j].SSRC
	})
	return out, t.rtcp
}

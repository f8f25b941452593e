// Package report analyses a capture's packets in one streaming pass into a
// Summary: traffic, VoIP (SIP dialogs, RTP streams), DNS, TCP, ICMP, DHCP
// and ARP facts, and a short list of findings with the Wireshark display
// filter that shows each one's evidence. Memory is bounded: every table
// (streams, dialogs, connections, queries, talkers) has a cap, and what did
// not fit is counted in the summary's limits.
package report

import (
	"errors"
	"github.com/presscap/presscap/probe/internal/pcapfile"
	"io"
	"net/netip"
	"sort"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Options bound the analysis and place the window.
type Options struct {
	// Start and Press, when known, anchor the rate bins and mark the press
	// (Unix ns; 0 when not known).
	Start, Press int64
	// End, when known, is the window's end (Unix ns): a call silent or
	// unanswered until then timed out even if no packet came after.
	End int64
	// HeuristicRTP takes version-2 UDP payloads between unprivileged ports
	// for RTP when no SDP in the window announced them, as tshark's
	// rtp.heuristic_rtp does.
	HeuristicRTP bool
	// Caps on the tables; zero means the default.
	MaxStreams, MaxDialogs, MaxConns, MaxQueries, MaxTalkers int
}

// Default caps: enough for a household's two-minute window; a flood beyond
// them is counted, not stored.
const (
	DefaultMaxStreams = 256
	DefaultMaxDialogs = 256
	DefaultMaxConns   = 8192
	DefaultMaxQueries = 4096
	DefaultMaxTalkers = 4096
	maxRateBins       = 600
	maxFindings       = 20
	maxGaps           = 64 // link-down intervals a link keeps
	topTalkers        = 10
)

func (o *Options) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxStreams, DefaultMaxStreams)
	def(&o.MaxDialogs, DefaultMaxDialogs)
	def(&o.MaxConns, DefaultMaxConns)
	def(&o.MaxQueries, DefaultMaxQueries)
	def(&o.MaxTalkers, DefaultMaxTalkers)
}

// Link names one capture interface: its name, pcap LINKTYPE_ value and,
// with network.ports, its side of the bridge (a pcapng interface's
// description).
type Link struct {
	Name     string
	LinkType uint32
	Side     string
}

// Analyzer consumes packets in time order (as a capture file or ring window
// holds them) and builds the Summary. It is not safe for concurrent use.
type Analyzer struct {
	opt   Options
	links []linkState

	packets, bytes, sliced, undecoded uint64
	first, last                       int64
	binWidth                          int64 // seconds per rate bin
	bins                              []uint64
	binBytes                          []uint64
	talkers                           map[talkerKey]*Talker // by address and link: a cheap key
	cur                               uint8                 // the link of the packet being analysed
	talkersDropped                    uint64
	talkCache                         [256]talkerSlot
	down                              map[string][]span // link-down intervals by link name
	slicedSpan                        span
	drops                             uint64
	missing                           time.Duration
	missingReason                     string

	rtp  rtpTable
	sip  sipTable
	dns  dnsTable
	tcp  tcpTable
	misc miscTable

	// decoding scratch, reused for every packet
	eth     layers.Ethernet
	dot1q   layers.Dot1Q
	sll     layers.LinuxSLL
	ip4     layers.IPv4
	ip6     layers.IPv6
	udp     layers.UDP
	tcpL    layers.TCP
	arp     layers.ARP
	icmp4   layers.ICMPv4
	icmp6   layers.ICMPv6
	decoded []gopacket.LayerType
	// decoders are the scratch layers by the layer type each decodes.
	decoders gopacket.DecodingLayerSparse
}

type linkState struct {
	Link
	first          gopacket.LayerType
	packets, bytes uint64
	sliced         uint64
	bins           []uint64 // packets per rate bin, as Analyzer.bins
}

// talkerKey is an address (As16) and the index of the link it was seen on.
type talkerKey [17]byte

// New returns an analyzer for packets of the given links (indexed as the
// capture file's interfaces are).
func New(links []Link, opt Options) *Analyzer {
	opt.defaults()
	a := &Analyzer{opt: opt, binWidth: 1, talkers: map[talkerKey]*Talker{}, down: map[string][]span{}}
	a.rtp.init(opt.MaxStreams)
	a.sip.init(opt.MaxDialogs)
	a.dns.init(opt.MaxQueries)
	a.tcp.init(opt.MaxConns)
	a.misc.init()
	for _, l := range []gopacket.DecodingLayer{&a.eth, &a.dot1q, &a.sll, &a.ip4, &a.ip6, &a.udp, &a.tcpL, &a.arp, &a.icmp4, &a.icmp6} {
		a.decoders = a.decoders.Put(l).(gopacket.DecodingLayerSparse)
	}
	for _, l := range links {
		a.links = append(a.links, linkState{Link: l, first: firstLayer(l.LinkType)})
	}
	return a
}

// firstLayer is the layer a link's frames start with, or
// gopacket.LayerTypeZero for a link type the report does not decode (its
// packets still count).
func firstLayer(linkType uint32) gopacket.LayerType {
	switch linkType {
	case 1:
		return layers.LayerTypeEthernet
	case 113:
		return layers.LayerTypeLinuxSLL
	case 101, 12, 14, 228: // LINKTYPE_RAW (and its old DLT numbers), IPV4
		return layers.LayerTypeIPv4 // the version nibble is checked in Add
	case 229:
		return layers.LayerTypeIPv6
	}
	return gopacket.LayerTypeZero
}

// decode runs gopacket's layer decoders from first on, as far as the
// report needs (link, network and transport layers), into a.decoded. It
// finds each layer's decoder by indexing a.decoders with the layer type
// rather than through a DecodingLayerParser, whose per-layer map lookups
// cost more than the rest of the analysis; like the parser, it turns a
// decoder's panic on hostile bytes into the end of the packet.
func (a *Analyzer) decode(first gopacket.LayerType, data []byte) {
	a.decoded = a.decoded[:0]
	defer func() {
		if recover() != nil {
			a.decoded = a.decoded[:0]
		}
	}()
	next := first
	for len(data) > 0 {
		l, ok := a.decoders.Decoder(next)
		if !ok {
			return
		}
		if l.DecodeFromBytes(data, gopacket.NilDecodeFeedback) != nil {
			return
		}
		a.decoded = append(a.decoded, next)
		if next == layers.LayerTypeUDP || next == layers.LayerTypeTCP {
			return // the payload is the tables' business
		}
		next, data = l.NextLayerType(), l.LayerPayload()
	}
}

// Add analyses one packet: link indexes the links given to New, ts is Unix
// ns, origLen the length on the wire and data the captured bytes (shorter
// when the packet was sliced). data is not kept.
func (a *Analyzer) Add(link int, ts int64, origLen uint32, data []byte) {
	if a.packets == 0 {
		a.first = ts
		if a.opt.Start == 0 || a.opt.Start > ts {
			a.opt.Start = ts
		}
	}
	a.packets++
	a.bytes += uint64(origLen)
	a.last = max(a.last, ts)
	sliced := int(origLen) > len(data)
	if sliced {
		a.sliced++
		a.slicedSpan.add(ts)
	}
	i := a.bin(ts, origLen)
	if link < 0 || link >= len(a.links) {
		a.undecoded++
		return
	}
	ls := &a.links[link]
	for int64(len(ls.bins)) <= i {
		ls.bins = append(ls.bins, 0)
	}
	ls.bins[i]++
	a.cur = uint8(min(link, 255))
	ls.packets++
	ls.bytes += uint64(origLen)
	if sliced {
		ls.sliced++
	}
	if ls.first == gopacket.LayerTypeZero || len(data) == 0 {
		a.undecoded++
		return
	}
	first := ls.first
	if first == layers.LayerTypeIPv4 && data[0]>>4 == 6 {
		first = layers.LayerTypeIPv6 // raw IP carries both
	}
	// A decoding error leaves the layers decoded before it in a.decoded:
	// a truncated or garbled packet still counts for what it shows.
	a.decode(first, data)
	a.dispatch(ts, origLen, sliced)
}

// bin counts the packet in its rate bin and returns the bin's index.
func (a *Analyzer) bin(ts int64, origLen uint32) int64 {
	sec := (ts - a.opt.Start) / int64(time.Second)
	if sec < 0 {
		sec = 0
	}
	i := sec / a.binWidth
	for i >= maxRateBins {
		// Keep the bins bounded for long files: halve the resolution.
		a.bins, a.binBytes = halve(a.bins), halve(a.binBytes)
		for k := range a.links {
			a.links[k].bins = halve(a.links[k].bins)
		}
		a.binWidth *= 2
		i = sec / a.binWidth
	}
	for int64(len(a.bins)) <= i {
		a.bins = append(a.bins, 0)
		a.binBytes = append(a.binBytes, 0)
	}
	a.bins[i]++
	a.binBytes[i] += uint64(origLen)
	return i
}

// halve merges each two neighbouring bins into one.
func halve(b []uint64) []uint64 {
	n := (len(b) + 1) / 2
	for j := 0; j < n; j++ {
		b[j] = b[2*j]
		if 2*j+1 < len(b) {
			b[j] += b[2*j+1]
		}
	}
	return b[:n]
}

type talkerSlot struct {
	key talkerKey
	t   *Talker
}

// packetInfo is what the protocol tables need of one decoded packet.
type packetInfo struct {
	ts       int64
	src, dst netip.Addr
	origLen  uint32
	sliced   bool
	ipv6     bool
	ipTTL    uint8
	ipID     uint16
	l4Len    int // transport payload length on the wire (IP lengths), -1 if unknown
}

func (a *Analyzer) dispatch(ts int64, origLen uint32, sliced bool) {
	pi := packetInfo{ts: ts, origLen: origLen, sliced: sliced, l4Len: -1}
	var haveIP, haveUDP, haveTCP bool
	for _, t := range a.decoded {
		switch t {
		case layers.LayerTypeIPv4:
			pi.src, _ = netip.AddrFromSlice(a.ip4.SrcIP.To4())
			pi.dst, _ = netip.AddrFromSlice(a.ip4.DstIP.To4())
			pi.ipTTL, pi.ipID = a.ip4.TTL, a.ip4.Id
			pi.l4Len = int(a.ip4.Length) - int(a.ip4.IHL)*4
			haveIP = true
		case layers.LayerTypeIPv6:
			pi.src, _ = netip.AddrFromSlice(a.ip6.SrcIP)
			pi.dst, _ = netip.AddrFromSlice(a.ip6.DstIP)
			pi.ipv6 = true
			pi.l4Len = int(a.ip6.Length)
			haveIP = true
		case layers.LayerTypeUDP:
			haveUDP = true
		case layers.LayerTypeTCP:
			haveTCP = true
		case layers.LayerTypeARP:
			a.misc.addARP(&a.arp, ts)
		case layers.LayerTypeICMPv4:
			if haveIP {
				a.misc.addICMP4(&a.icmp4, pi)
			}
		case layers.LayerTypeICMPv6:
			if haveIP {
				a.misc.addICMP6(&a.icmp6, pi)
			}
		}
	}
	if !haveIP {
		if len(a.decoded) == 0 {
			a.undecoded++
		}
		return
	}
	a.talk(pi.src, origLen, true)
	a.talk(pi.dst, origLen, false)
	switch {
	case haveUDP:
		a.udpPacket(pi)
	case haveTCP:
		seglen := -1
		if pi.l4Len >= 0 {
			seglen = pi.l4Len - int(a.tcpL.DataOffset)*4
		}
		if seglen < 0 {
			seglen = len(a.tcpL.Payload)
		}
		a.tcp.add(&a.tcpL, pi, seglen)
		src := netip.AddrPortFrom(pi.src, uint16(a.tcpL.SrcPort))
		dst := netip.AddrPortFrom(pi.dst, uint16(a.tcpL.DstPort))
		if a.tcpL.SrcPort == 53 || a.tcpL.DstPort == 53 {
			a.dns.addTCP(&a.tcpL, seglen, pi, src, dst)
		}
		if (a.tcpL.SrcPort == 5060 || a.tcpL.DstPort == 5060) && len(a.tcpL.Payload) > 0 {
			a.sip.add(a.tcpL.Payload, pi, src, dst, &a.rtp)
		}
	}
}

func (a *Analyzer) udpPacket(pi packetInfo) {
	u := &a.udp
	src := netip.AddrPortFrom(pi.src, uint16(u.SrcPort))
	dst := netip.AddrPortFrom(pi.dst, uint16(u.DstPort))
	payload := u.Payload
	switch {
	case u.SrcPort == 53 || u.DstPort == 53:
		a.dns.add(payload, pi, src, dst)
		return
	case u.SrcPort == 5060 || u.DstPort == 5060:
		a.sip.add(payload, pi, src, dst, &a.rtp)
		return
	case (u.SrcPort == 67 || u.SrcPort == 68) && (u.DstPort == 67 || u.DstPort == 68):
		a.misc.addDHCP(payload, pi)
		return
	}
	a.rtp.add(payload, pi, src, dst, a.opt.HeuristicRTP)
}

func (a *Analyzer) talk(addr netip.Addr, n uint32, sent bool) {
	var key talkerKey
	*(*[16]byte)(key[:16]) = addr.As16()
	key[16] = a.cur
	// A small direct-mapped cache in front of the map: a line has few
	// busy addresses, and two map lookups a packet were a fifth of the cost.
	slot := &a.talkCache[key[15]^key[13]<<4^key[16]<<7]
	t := slot.t
	if t == nil || slot.key != key {
		t = a.talkers[key]
		if t == nil {
			if len(a.talkers) >= a.opt.MaxTalkers {
				a.talkersDropped++
				return
			}
			t = &Talker{Addr: addr.String()}
			a.talkers[key] = t
		}
		*slot = talkerSlot{key, t}
	}
	if sent {
		t.PacketsSent++
		t.BytesSent += uint64(n)
	} else {
		t.PacketsReceived++
		t.BytesReceived += uint64(n)
	}
}

// CaptureLoss tells the analysis what the capture lost that no packet
// shows: drops inside the window, and how much of the window's time the
// ring no longer held (and why), for the summary and its findings.
func (a *Analyzer) CaptureLoss(drops uint64, missing time.Duration, reason string) {
	a.drops, a.missing, a.missingReason = drops, missing, reason
}

// SetEnd gives the window's end (Unix ns) once it is known: a press may
// extend the window after the analysis began.
func (a *Analyzer) SetEnd(ns int64) { a.opt.End = ns }

// LinkDown tells the analysis that the link (a ring link's name) had no
// carrier from..to (Unix ns; to 0: still down at the window's end). Only
// the part inside the window counts.
func (a *Analyzer) LinkDown(link string, from, to int64) {
	if len(a.down[link]) < maxGaps {
		a.down[link] = append(a.down[link], span{from, to})
	}
}

// gaps are the link's down intervals clipped to the window.
func (a *Analyzer) gaps(link string) []LinkGap {
	start, end := a.opt.Start, max(a.opt.End, a.last)
	out := []LinkGap{}
	for _, g := range a.down[link] {
		from, to := max(g.first, start), g.last
		if to == 0 || to > end {
			to = end
		}
		if to <= from {
			continue
		}
		out = append(out, LinkGap{From: stamp(from), To: stamp(to), Duration: time.Duration(to - from).Round(time.Millisecond).String()})
	}
	return out
}

// top returns the busiest talkers, most bytes first.
func top(tl []Talker) []Talker {
	sort.Slice(tl, func(i, j int) bool {
		bi, bj := tl[i].BytesSent+tl[i].BytesReceived, tl[j].BytesSent+tl[j].BytesReceived
		if bi != bj {
			return bi > bj
		}
		return tl[i].Addr < tl[j].Addr
	})
	if tl == nil {
		return []Talker{}
	}
	return tl[:min(len(tl), topTalkers)]
}

// Summary returns the analysis of the packets added so far.
func (a *Analyzer) Summary() *Summary {
	s := &Summary{
		Traffic:          Traffic{Packets: a.packets, Bytes: a.bytes, SlicedPackets: a.sliced, RatePackets: append([]uint64{}, a.bins...)},
		UndecodedPackets: a.undecoded, RateBinSeconds: int(a.binWidth), RateBytes: append([]uint64{}, a.binBytes...),
	}
	if a.packets > 0 {
		s.First, s.Last = stamp(a.first), stamp(a.last)
		s.Start = stamp(a.opt.Start)
	}
	if a.opt.Press != 0 {
		p := stamp(a.opt.Press)
		s.Press = &p
	}
	if a.sliced > 0 {
		s.SliceNote = sliceNote
	}
	s.CaptureDrops = a.drops
	if a.missing > 0 {
		s.Missing, s.MissingReason = a.missing.String(), a.missingReason
	}
	// Per link: its talkers, and the whole's by address.
	perLink := make([][]Talker, len(a.links))
	byAddr := map[string]*Talker{}
	for k, t := range a.talkers {
		if int(k[16]) < len(perLink) {
			perLink[k[16]] = append(perLink[k[16]], *t)
		}
		if m := byAddr[t.Addr]; m != nil {
			m.PacketsSent += t.PacketsSent
			m.BytesSent += t.BytesSent
			m.PacketsReceived += t.PacketsReceived
			m.BytesReceived += t.BytesReceived
		} else {
			c := *t
			byAddr[t.Addr] = &c
		}
	}
	tl := make([]Talker, 0, len(byAddr))
	for _, t := range byAddr {
		tl = append(tl, *t)
	}
	s.TopTalkers = top(tl)
	named := map[string]bool{}
	for i, l := range a.links {
		named[l.Name] = true
		ls := LinkStats{Name: l.Name, Side: l.Side, LinkType: l.LinkType, Decoded: l.first != gopacket.LayerTypeZero,
			Traffic: Traffic{Packets: l.packets, Bytes: l.bytes, SlicedPackets: l.sliced,
				RatePackets: append([]uint64{}, l.bins...), TopTalkers: top(perLink[i])},
			Down: a.gaps(l.Name)}
		s.Links = append(s.Links, ls)
	}
	// A link that was down the whole window may have no packet, and in a
	// file of another link's export no interface: it is listed all the same.
	var other []string
	for name := range a.down {
		if !named[name] {
			other = append(other, name)
		}
	}
	sort.Strings(other)
	for _, name := range other {
		s.Links = append(s.Links, LinkStats{Name: name, Traffic: Traffic{RatePackets: []uint64{}, TopTalkers: []Talker{}}, Down: a.gaps(name)})
	}
	s.RTPStreams, s.RTCP = a.rtp.summary(a.first)
	s.SIP = a.sip.summary(a.first, max(a.last, a.opt.End), s.RTPStreams)
	s.DNS = a.dns.summary(a.last)
	s.TCP = a.tcp.summary()
	s.ICMP, s.DHCP, s.ARP = a.misc.summary()
	s.Limits = Limits{
		MaxRTPStreams: a.opt.MaxStreams, RTPStreamsDropped: a.rtp.dropped,
		MaxSIPDialogs: a.opt.MaxDialogs, SIPDialogsDropped: a.sip.dropped,
		MaxTCPConnections: a.opt.MaxConns, TCPConnectionsDropped: a.tcp.dropped,
		MaxDNSQueries: a.opt.MaxQueries, DNSQueriesDropped: a.dns.dropped,
		MaxTalkers: a.opt.MaxTalkers, TalkersDropped: a.talkersDropped,
	}
	s.evidence = map[string]span{"dns-unanswered": a.dns.unansweredSpan, "dns-failure": a.dns.failureSpan,
		"dns-slow": a.dns.slowSpan, "tcp-failed": a.tcp.failedSpan, "tcp-retrans": a.tcp.retransSpan,
		"tcp-zero": a.tcp.zeroSpan, "icmp-unreach": a.misc.unreachSpan, "icmp-ttl": a.misc.ttlSpan,
		"dhcp": a.misc.dhcpSpan, "arp": a.misc.arpSpan, "sliced": a.slicedSpan}
	u := s.evidence["dns-unanswered"]
	for _, sent := range a.dns.pendingSpan(a.last) {
		u.add(sent)
	}
	s.evidence["dns-unanswered"] = u
	s.Findings = findings(s)
	return s
}

// sliceNote says what a sliced packet hides, for the summary and the page.
const sliceNote = "Some packets were sliced (captured shorter than on the wire). " +
	"Counts, bytes, TCP sequence analysis and RTP headers are intact (lengths come from the IP header); " +
	"what lies beyond the slice is not seen: a cut SIP message still counts by its first line, but its Call-ID and SDP " +
	"can be gone (dialogs, verdicts and SDP-matched streams missing), and cut DNS messages count as malformed."

// span is the first and last packet time of some evidence.
type span struct{ first, last int64 }

func (s *span) add(ts int64) {
	if s.first == 0 || ts < s.first {
		s.first = ts
	}
	s.last = max(s.last, ts)
}

func stamp(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// Read analyses a whole capture file (classic pcap or pcapng). On a
// damaged file it returns the summary of the packets before the damage
// together with the error.
func Read(r io.Reader, opt Options) (*Summary, error) {
	rd, err := pcapfile.NewReader(r)
	if err != nil {
		return nil, err
	}
	var a *Analyzer
	nlinks := -1
	for {
		p, err := rd.Next()
		// pcapng may describe interfaces between packets: keep up.
		if ifs := rd.Interfaces(); len(ifs) != nlinks {
			links := make([]Link, len(ifs))
			for i, ifc := range ifs {
				links[i] = Link{Name: ifc.Name, LinkType: ifc.LinkType, Side: ifc.Description}
			}
			if a == nil {
				a = New(links, opt)
			} else {
				a.addLinks(links[nlinks:])
			}
			nlinks = len(ifs)
		}
		if errors.Is(err, io.EOF) {
			return a.Summary(), nil
		}
		if err != nil {
			return a.Summary(), err
		}
		a.Add(p.Iface, p.Time, p.OrigLen, p.Data)
	}
}

// addLinks appends interfaces described after the first packets.
func (a *Analyzer) addLinks(links []Link) {
	for _, l := range links {
		a.links = append(a.links, linkState{Link: l, first: firstLayer(l.LinkType)})
	}
}

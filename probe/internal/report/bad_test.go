package report

import (
	"github.com/gopacket/gopacket/layers"
	"github.com/presscap/presscap/probe/internal/report/reporttest"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func analyse(g *reporttest.Gen, opt Options, slice int) *Summary {
	a := New([]Link{{Name: "eth0", LinkType: 1}}, opt)
	for _, p := range g.Pkts {
		d := p.Data
		if slice > 0 && len(d) > slice {
			d = d[:slice]
		}
		a.Add(0, p.TS, uint32(len(p.Data)), d)
	}
	return a.Summary()
}

// TestSlicedPackets: packets cut at 96 bytes keep every count that lives
// in the headers (RTP streams, TCP analysis) and say what the slice hid.
func TestSlicedPackets(t *testing.T) {
	g, tr := reporttest.Mixed(3)
	g.WritePCAP(t, "sorted.pcap") // sorts the packets by time
	full := analyse(g, Options{HeuristicRTP: true}, 0)
	cut := analyse(g, Options{HeuristicRTP: true}, 96)
	if cut.SlicedPackets == 0 || cut.SliceNote == "" {
		t.Fatalf("sliced packets %d, note %q", cut.SlicedPackets, cut.SliceNote)
	}
	if cut.Packets != full.Packets || cut.Bytes != full.Bytes {
		t.Errorf("sliced: %d packets %d bytes, whole %d %d", cut.Packets, cut.Bytes, full.Packets, full.Bytes)
	}
	for ssrc, want := range tr.RTP {
		var got *RTPStream
		for i := range cut.RTPStreams {
			if cut.RTPStreams[i].SSRC == ssrc {
				got = &cut.RTPStreams[i]
			}
		}
		if got == nil || got.Packets != want.Packets || got.Lost != want.Lost {
			t.Errorf("sliced RTP 0x%08x: %+v, want packets %d lost %d", ssrc, got, want.Packets, want.Lost)
		}
	}
	if cut.TCP.Retransmissions != full.TCP.Retransmissions || cut.TCP.Connections != full.TCP.Connections {
		t.Errorf("sliced TCP: %+v, whole %+v", cut.TCP, full.TCP)
	}
	// The SIP bodies are gone: the slice hides them, and says so.
	if cut.SIP.Messages != full.SIP.Messages || cut.SIP.Calls >= full.SIP.Calls {
		t.Errorf("sliced SIP looks whole: %+v", cut.SIP)
	}
	found := false
	for _, f := range cut.Findings {
		found = found || strings.Contains(f.Text, "sliced") && f.DisplayFilter == "frame.cap_len < frame.len"
	}
	if !found {
		t.Errorf("no finding about slicing: %+v", cut.Findings)
	}
}

// TestBadInputGivesAReport: truncated packets, garbage SIP, RTP with wild
// sequence numbers and timestamps, DNS garbage: a report, no panic.
func TestBadInputGivesAReport(t *testing.T) {
	g, _ := reporttest.Mixed(4)
	rnd := rand.New(rand.NewPCG(5, 6))
	garbage := []string{"", "INVITE\r\n", "SIP/2.0 99999999999999999999 X\r\n\r\n", "SIP/2.0 200\r\nCSeq:\r\n\r\n",
		"INVITE sip:x SIP/2.0\r\nCall-ID: x\r\nContent-Type: application/sdp\r\n\r\nm=audio 99999999 RTP/AVP\r\nc=IN IP4 999.1.1.1\r\na=rtpmap:\r\na=rtpmap:300 x\r\nm=audio 0 RTP/AVP 0\r\n",
		"BYE sip:x SIP/2.0\r\n Call-ID: folded\r\n\tcontinued\r\n\r\n", "\x00\x01\x02", strings.Repeat("A", 3000)}
	for i, s := range garbage {
		g.UDP(time.Duration(i)*time.Millisecond, "10.9.9.9", 5060, "10.9.9.8", 5060, []byte(s))
		g.UDP(time.Duration(i)*time.Millisecond, "10.9.9.9", 53, "10.9.9.8", 5353, []byte(s))
	}
	for i := 0; i < 500; i++ {
		b := make([]byte, 12+rnd.IntN(40))
		for j := range b {
			b[j] = byte(rnd.Uint32())
		}
		b[0] = 0x80 | b[0]&0x3f
		g.UDP(time.Duration(rnd.IntN(10000))*time.Millisecond, "10.7.7.7", 30000, "10.7.7.8", 30002, b)
	}
	g.WritePCAP(t, "sorted.pcap")
	for _, slice := range []int{0, 1, 13, 14, 20, 34, 40, 54, 60} {
		s := analyse(g, Options{HeuristicRTP: true}, slice)
		if s.Packets != uint64(len(g.Pkts)) {
			t.Errorf("slice %d: %d packets, want %d", slice, s.Packets, len(g.Pkts))
		}
	}
	// Whole packets cut short with their lengths: random truncation.
	a := New([]Link{{Name: "eth0", LinkType: 1}, {Name: "raw", LinkType: 101}, {Name: "odd", LinkType: 147}}, Options{HeuristicRTP: true})
	for _, p := range g.Pkts {
		n := rnd.IntN(len(p.Data) + 1)
		a.Add(rnd.IntN(4)-0, p.TS, uint32(len(p.Data)), p.Data[:n])
		a.Add(1, p.TS, uint32(len(p.Data)), p.Data[14:max(14, n)])
	}
	s := a.Summary()
	if s.Packets != uint64(2*len(g.Pkts)) || s.UndecodedPackets == 0 {
		t.Errorf("truncated: %d packets (%d undecoded), want %d", s.Packets, s.UndecodedPackets, 2*len(g.Pkts))
	}
	full := analyse(g, Options{HeuristicRTP: true}, 0)
	if full.SIP.Malformed == 0 {
		t.Errorf("garbage SIP not counted as malformed: %+v", full.SIP)
	}
	// Random bytes that start like RTP make no stream (and no finding of
	// 100 % loss): a heuristic stream needs two packets in sequence.
	for _, r := range full.RTPStreams {
		if strings.HasPrefix(r.Src, "10.7.7.7:") {
			t.Errorf("a stream from random UDP: %+v", r)
		}
	}
}

// TestTenThousandFlows: every table stops at its cap, says so, and the
// report still comes.
func TestTenThousandFlows(t *testing.T) {
	g := reporttest.Flood(7, 10000)
	opt := Options{HeuristicRTP: true, MaxStreams: 100, MaxDialogs: 100, MaxConns: 1000, MaxQueries: 1000, MaxTalkers: 500}
	a := New([]Link{{Name: "eth0", LinkType: 1}}, opt)
	for _, p := range g.Pkts {
		a.Add(0, p.TS, uint32(len(p.Data)), p.Data)
	}
	s := a.Summary()
	if len(a.rtp.streams) > 100 || len(a.sip.dialogs) > 100 || len(a.tcp.conns) > 1000 || len(a.dns.pending) > 1000 || len(a.talkers) > 500 {
		t.Errorf("tables over their caps: %d streams, %d dialogs, %d connections, %d queries, %d talkers",
			len(a.rtp.streams), len(a.sip.dialogs), len(a.tcp.conns), len(a.dns.pending), len(a.talkers))
	}
	l := s.Limits
	if l.RTPStreamsDropped != 9900 || l.SIPDialogsDropped != 9900 || l.TCPConnectionsDropped != 9000 || l.TalkersDropped == 0 || l.MaxRTPStreams != 100 {
		t.Errorf("limits: %+v", l)
	}
	if s.TCP.Connections != 1000 || s.DNS.Queries != 10000 {
		t.Errorf("TCP connections %d (cap 1000), DNS queries %d (all counted)", s.TCP.Connections, s.DNS.Queries)
	}
	found := false
	for _, f := range s.Findings {
		found = found || strings.Contains(f.Text, "tables were full")
	}
	if !found {
		t.Errorf("no finding about the caps: %+v", s.Findings)
	}
}

// FuzzPacket feeds arbitrary frames to the whole analysis (Ethernet and
// raw IP), seeded with every packet of the generated traffic.
func FuzzPacket(f *testing.F) {
	g, _ := reporttest.Mixed(8)
	for i, p := range g.Pkts {
		if i%7 == 0 {
			f.Add(p.Data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a := New([]Link{{Name: "eth0", LinkType: 1}, {Name: "raw", LinkType: 101}}, Options{HeuristicRTP: true})
		a.Add(0, 1, uint32(len(data)), data)
		a.Add(1, 2, uint32(len(data)), data)
		a.Add(0, 3, uint32(len(data)+10), data)
		a.Summary()
	})
}

// FuzzDecoders feeds arbitrary payloads to each decoder directly: SIP
// (with its SDP), RTP/RTCP, DNS and DHCP, twice so that state carries.
func FuzzDecoders(f *testing.F) {
	f.Add([]byte(reporttest.SIPMsg("INVITE sip:b SIP/2.0", "id", "a", "b", "1 INVITE", reporttest.SDPBody("10.0.0.1", 4000, "0 101", "a=rtpmap:101 telephone-event/8000\r\n"))))
	f.Add([]byte{0x80, 0x00, 0x00, 0x01, 0, 0, 0, 160, 1, 2, 3, 4})
	f.Add([]byte{0x81, 200, 0x00, 0x0c, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9, 64, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 30, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(reporttest.DNSMsg(7, true, 3, "a.example"))
	f.Add([]byte("\x00\x05hello\x00\x02hi\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a := New(nil, Options{HeuristicRTP: true})
		pi := packetInfo{ts: 1e9, src: netip.MustParseAddr("10.0.0.1"), dst: netip.MustParseAddr("10.0.0.2"), l4Len: len(b)}
		src, dst := netip.MustParseAddrPort("10.0.0.1:4000"), netip.MustParseAddrPort("10.0.0.2:4000")
		for i := 0; i < 2; i++ {
			a.sip.add(b, pi, src, dst, &a.rtp)
			a.rtp.add(b, pi, src, dst, true)
			a.dns.add(b, pi, src, dst)
			a.misc.addDHCP(b, pi)
			// DNS over TCP: b as a stream in two segments, then again
			// (a retransmission), with its length prefixes as they fall.
			k := len(b) / 3
			for j, seg := range [][]byte{b[:k], b[k:]} {
				h := layers.TCP{Seq: uint32(1000 + j*k), SYN: i == 0 && j == 0}
				h.Payload = seg
				a.dns.addTCP(&h, len(seg), pi, src, netip.MustParseAddrPort("10.0.0.2:53"))
			}
			pi.ts += 20e6
		}
		a.Summary()
	})
}

// Package reporttest generates VoIP, DNS and TCP traffic with known faults
// (loss, reordering, jitter, failed calls and connections) and the truth of
// what it injected, for the report's tests and benchmark.
package reporttest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/presscap/presscap/probe/internal/pcapfile"
)

// The traffic generator: VoIP, DNS and TCP with known loss, reordering,
// jitter and failures, written with the project's PCAP writer. Its Truth
// is what the generator injected.

type Packet struct {
	TS   int64
	Data []byte
}

type Gen struct {
	T0   int64
	Pkts []Packet
	Rnd  *rand.Rand
}

// Truth is what the generator injected.
type Truth struct {
	RTP            map[uint32]RTPTruth // by SSRC
	SIPFinal       map[string]uint64   // final response code -> messages
	SIPProvisional map[string]uint64
	Calls          int
	DNSQueries     uint64
	DNSUnanswered  uint64
	DNSRcodes      map[string]uint64
	TCPConnections uint64
	TCPRetrans     uint64
	TCPResets      uint64
	TCPFailed      uint64
	OneWayCallID   string
	FailedCallID   string
}

type RTPTruth struct {
	Packets uint64
	Lost    int64
}

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
)

func New(seed uint64) *Gen {
	return &Gen{T0: time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC).UnixNano(), Rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b9))}
}

func (g *Gen) emit(at time.Duration, ls ...gopacket.SerializableLayer) {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		panic(err)
	}
	g.Pkts = append(g.Pkts, Packet{g.T0 + int64(at), bytes.Clone(buf.Bytes())})
}

func ip4(s string) net.IP { return net.ParseIP(s).To4() }

func (g *Gen) UDP(at time.Duration, src string, sport uint16, dst string, dport uint16, payload []byte) {
	eth := &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: ip4(src), DstIP: ip4(dst)}
	u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	u.SetNetworkLayerForChecksum(ip)
	g.emit(at, eth, ip, u, gopacket.Payload(payload))
}

func (g *Gen) TCP(at time.Duration, src string, sport uint16, dst string, dport uint16, h layers.TCP, payload []byte) {
	eth := &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: ip4(src), DstIP: ip4(dst)}
	h.SrcPort, h.DstPort = layers.TCPPort(sport), layers.TCPPort(dport)
	if h.Window == 0 && !h.RST {
		h.Window = 64000
	}
	h.SetNetworkLayerForChecksum(ip)
	g.emit(at, eth, ip, &h, gopacket.Payload(payload))
}

// WritePCAP sorts the packets by time and writes them as a classic PCAP
// file in a temporary directory of t.
func (g *Gen) WritePCAP(t testing.TB, name string) string {
	t.Helper()
	g.Sort()
	path := filepath.Join(t.TempDir(), name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcapfile.NewWriter(f, "pcap", []pcapfile.Interface{{Name: "eth0", LinkType: 1}}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range g.Pkts {
		if err := w.WritePacket(0, p.TS, uint32(len(p.Data)), p.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func SIPMsg(first, callID, from, to, cseq string, sdp string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\r\nVia: SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK%s\r\nFrom: <sip:%s>;tag=1\r\nTo: <sip:%s>\r\nCall-ID: %s\r\nCSeq: %s\r\nMax-Forwards: 70\r\n",
		first, callID, from, to, callID, cseq)
	if sdp != "" {
		fmt.Fprintf(&b, "Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", len(sdp), sdp)
	} else {
		b.WriteString("Content-Length: 0\r\n\r\n")
	}
	return b.Bytes()
}

func SDPBody(addr string, port int, pts string, maps string) string {
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP %s\r\n%s", addr, addr, port, pts, maps)
}

const (
	phone = "192.168.1.10"
	proxy = "203.0.113.5"
)

// call generates one SIP call from the phone; answer is the final code
// (200 answers with SDP). It returns the time the call is set up.
func (g *Gen) Call(tr *Truth, at time.Duration, callID string, answer int, phonePort, farPort int) time.Duration {
	tr.Calls++
	from, to := "alice@example.net", "bob@example.net"
	inv := SIPMsg("INVITE sip:bob@example.net SIP/2.0", callID, from, to, "1 INVITE",
		SDPBody(phone, phonePort, "0 101", "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"))
	g.UDP(at, phone, 5060, proxy, 5060, inv)
	g.UDP(at+30*time.Millisecond, proxy, 5060, phone, 5060, SIPMsg("SIP/2.0 100 Trying", callID, from, to, "1 INVITE", ""))
	g.UDP(at+200*time.Millisecond, proxy, 5060, phone, 5060, SIPMsg("SIP/2.0 180 Ringing", callID, from, to, "1 INVITE", ""))
	tr.SIPProvisional["100"]++
	tr.SIPProvisional["180"]++
	code := fmt.Sprint(answer)
	tr.SIPFinal[code]++
	if answer == 200 {
		g.UDP(at+2*time.Second, proxy, 5060, phone, 5060, SIPMsg("SIP/2.0 200 OK", callID, from, to, "1 INVITE",
			SDPBody(proxy, farPort, "0", "a=rtpmap:0 PCMU/8000\r\n")))
	} else {
		g.UDP(at+2*time.Second, proxy, 5060, phone, 5060, SIPMsg("SIP/2.0 "+code+" Busy Here", callID, from, to, "1 INVITE", ""))
	}
	g.UDP(at+2*time.Second+20*time.Millisecond, phone, 5060, proxy, 5060, SIPMsg("ACK sip:bob@example.net SIP/2.0", callID, from, to, "1 ACK", ""))
	return at + 2*time.Second + 40*time.Millisecond
}

func (g *Gen) Bye(tr *Truth, at time.Duration, callID string) {
	from, to := "alice@example.net", "bob@example.net"
	g.UDP(at, phone, 5060, proxy, 5060, SIPMsg("BYE sip:bob@example.net SIP/2.0", callID, from, to, "2 BYE", ""))
	g.UDP(at+40*time.Millisecond, proxy, 5060, phone, 5060, SIPMsg("SIP/2.0 200 OK", callID, from, to, "2 BYE", ""))
	tr.SIPFinal["200"]++
}

// RTPOpts are the faults injected into one stream.
type RTPOpts struct {
	SSRC      uint32
	N         int
	FirstSeq  uint16
	LossEvery int     // drop one packet in lossEvery (0: none)
	Burst     [2]int  // drop packets [burst[0], burst[1])
	Swap      []int   // send packet i after packet i+1
	Dup       []int   // send packet i twice
	JitterMs  float64 // uniform arrival noise, 0..jitterMs
	Gap       [2]int  // packet gap[0] arrives gap[1] ms late, the rest keep their times
	Marker    []int
	PT        uint8
}

// rtp generates one stream of 20 ms packets and records its Truth: the
// packets the capture holds and tshark's lost (expected minus received,
// expected from the first and last sequence numbers).
func (g *Gen) RTP(tr *Truth, at time.Duration, src string, sport uint16, dst string, dport uint16, o RTPOpts) {
	type p struct {
		at  time.Duration
		seq uint16
		idx int
	}
	var ps []p
	received := 0
	for i := 0; i < o.N; i++ {
		if o.LossEvery > 0 && i%o.LossEvery == o.LossEvery/2 && i != o.N-1 && i != 0 {
			continue
		}
		if i >= o.Burst[0] && i < o.Burst[1] {
			continue
		}
		t := at + time.Duration(i)*20*time.Millisecond
		if o.JitterMs > 0 {
			t += time.Duration(g.Rnd.Float64() * o.JitterMs * float64(time.Millisecond))
		}
		if o.Gap[1] > 0 && i == o.Gap[0] {
			t += time.Duration(o.Gap[1]) * time.Millisecond
		}
		ps = append(ps, p{t, o.FirstSeq + uint16(i), i})
		received++
		for _, d := range o.Dup {
			if d == i {
				ps = append(ps, p{t + time.Millisecond, o.FirstSeq + uint16(i), i})
				received++
			}
		}
	}
	for _, s := range o.Swap {
		for k := range ps {
			if ps[k].idx == s && k+1 < len(ps) {
				ps[k].at, ps[k+1].at = ps[k+1].at, ps[k].at
				ps[k], ps[k+1] = ps[k+1], ps[k]
				break
			}
		}
	}
	for _, x := range ps {
		b := make([]byte, 12+160)
		b[0] = 0x80
		b[1] = o.PT
		for _, m := range o.Marker {
			if m == x.idx {
				b[1] |= 0x80
			}
		}
		b[2], b[3] = byte(x.seq>>8), byte(x.seq)
		ts := uint32(1000 + 160*x.idx)
		b[4], b[5], b[6], b[7] = byte(ts>>24), byte(ts>>16), byte(ts>>8), byte(ts)
		b[8], b[9], b[10], b[11] = byte(o.SSRC>>24), byte(o.SSRC>>16), byte(o.SSRC>>8), byte(o.SSRC)
		g.UDP(x.at, src, sport, dst, dport, b)
	}
	last := ps[len(ps)-1]
	expected := int64(uint16(last.seq-ps[0].seq)) + 1
	tr.RTP[o.SSRC] = RTPTruth{Packets: uint64(received), Lost: expected - int64(received)}
}

func DNSMsg(id uint16, resp bool, rcode layers.DNSResponseCode, name string) []byte {
	d := &layers.DNS{ID: id, QR: resp, RD: true, RA: resp, ResponseCode: rcode, OpCode: layers.DNSOpCodeQuery,
		Questions: []layers.DNSQuestion{{Name: []byte(name), Type: layers.DNSTypeA, Class: layers.DNSClassIN}}}
	if resp && rcode == 0 {
		d.Answers = []layers.DNSResourceRecord{{Name: []byte(name), Type: layers.DNSTypeA, Class: layers.DNSClassIN, TTL: 60, IP: net.IP{198, 51, 100, 7}}}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := d.SerializeTo(buf, gopacket.SerializeOptions{FixLengths: true}); err != nil {
		panic(err)
	}
	return bytes.Clone(buf.Bytes())
}

// dns generates n queries: every 10th unanswered, every 7th NXDomain,
// every 13th ServFail, every 11th answered slowly (800 ms).
func (g *Gen) DNS(tr *Truth, at time.Duration, n int) {
	for i := 0; i < n; i++ {
		t := at + time.Duration(i)*150*time.Millisecond
		id := uint16(0x1000 + i)
		port := uint16(40000 + i)
		name := fmt.Sprintf("host%d.example.net", i)
		g.UDP(t, phone, port, "192.168.1.1", 53, DNSMsg(id, false, 0, name))
		tr.DNSQueries++
		if i%10 == 3 {
			tr.DNSUnanswered++
			continue
		}
		rc := layers.DNSResponseCode(0)
		switch {
		case i%7 == 2:
			rc = 3
		case i%13 == 5:
			rc = 2
		}
		tr.DNSRcodes[rcodeNames[rc]]++
		lat := 20 * time.Millisecond
		if i%11 == 4 {
			lat = 800 * time.Millisecond
		}
		g.UDP(t+lat, "192.168.1.1", 53, phone, port, DNSMsg(id, true, rc, name))
	}
}

// tcpTransfer is a connection that sends n segments from the server,
// losing (after the capture point) the segments in lose, each resent
// after 300 ms.
func (g *Gen) TCPTransfer(tr *Truth, at time.Duration, cport uint16, n int, lose map[int]bool) {
	c, s := phone, "198.51.100.20"
	cs, ss := uint32(1000), uint32(5000)
	tr.TCPConnections++
	g.TCP(at, c, cport, s, 443, layers.TCP{SYN: true, Seq: cs}, nil)
	g.TCP(at+10*time.Millisecond, s, 443, c, cport, layers.TCP{SYN: true, ACK: true, Seq: ss, Ack: cs + 1}, nil)
	g.TCP(at+20*time.Millisecond, c, cport, s, 443, layers.TCP{ACK: true, Seq: cs + 1, Ack: ss + 1}, nil)
	t := at + 30*time.Millisecond
	seq := ss + 1
	const mss = 1000
	payload := make([]byte, mss)
	for i := 0; i < n; i++ {
		g.TCP(t, s, 443, c, cport, layers.TCP{ACK: true, PSH: true, Seq: seq, Ack: cs + 1}, payload)
		if lose[i] {
			// Lost beyond the probe: no ACK; the server resends after its RTO.
			g.TCP(t+300*time.Millisecond, s, 443, c, cport, layers.TCP{ACK: true, PSH: true, Seq: seq, Ack: cs + 1}, payload)
			tr.TCPRetrans++
			t += 300 * time.Millisecond
		}
		g.TCP(t+10*time.Millisecond, c, cport, s, 443, layers.TCP{ACK: true, Seq: cs + 1, Ack: seq + mss}, nil)
		seq += mss
		t += 20 * time.Millisecond
	}
	g.TCP(t, c, cport, s, 443, layers.TCP{FIN: true, ACK: true, Seq: cs + 1, Ack: seq}, nil)
	g.TCP(t+10*time.Millisecond, s, 443, c, cport, layers.TCP{FIN: true, ACK: true, Seq: seq, Ack: cs + 2}, nil)
	g.TCP(t+20*time.Millisecond, c, cport, s, 443, layers.TCP{ACK: true, Seq: cs + 2, Ack: seq + 1}, nil)
}

// tcpFailures: a SYN never answered (resent twice: two retransmissions),
// and one refused with RST.
func (g *Gen) TCPFailures(tr *Truth, at time.Duration) {
	s := "198.51.100.30"
	for _, d := range []time.Duration{0, time.Second, 3 * time.Second} {
		g.TCP(at+d, phone, 50001, s, 443, layers.TCP{SYN: true, Seq: 777}, nil)
	}
	tr.TCPConnections++
	tr.TCPRetrans += 2
	tr.TCPFailed++
	g.TCP(at, phone, 50002, s, 8080, layers.TCP{SYN: true, Seq: 999}, nil)
	g.TCP(at+5*time.Millisecond, s, 8080, phone, 50002, layers.TCP{RST: true, ACK: true, Seq: 0, Ack: 1000}, nil)
	tr.TCPConnections++
	tr.TCPFailed++
	tr.TCPResets++
}

// Mixed is the mixed test traffic: three calls (answered with loss,
// jitter, reordering and a duplicate on the phone's stream and 12 % loss
// on the other leg; failed with 486; answered with one-way audio), DNS
// with failures and TCP with retransmissions and failed connections.
func Mixed(seed uint64) (*Gen, *Truth) {
	g := New(seed)
	tr := &Truth{RTP: map[uint32]RTPTruth{}, SIPFinal: map[string]uint64{}, SIPProvisional: map[string]uint64{}, DNSRcodes: map[string]uint64{}}
	up := g.Call(tr, 0, "call-ok@192.168.1.10", 200, 40000, 50000)
	g.RTP(tr, up, phone, 40000, proxy, 50000, RTPOpts{SSRC: 0x1111, N: 500, FirstSeq: 65400,
		Burst: [2]int{100, 105}, Swap: []int{300}, Dup: []int{400}, JitterMs: 8, Gap: [2]int{450, 150}})
	g.RTP(tr, up+5*time.Millisecond, proxy, 50000, phone, 40000, RTPOpts{SSRC: 0x2222, N: 500, FirstSeq: 10, LossEvery: 8, JitterMs: 2})
	g.Bye(tr, up+11*time.Second, "call-ok@192.168.1.10")
	tr.FailedCallID = "call-busy@192.168.1.10"
	g.Call(tr, 3*time.Second, tr.FailedCallID, 486, 40002, 0)
	tr.OneWayCallID = "call-oneway@192.168.1.10"
	up3 := g.Call(tr, 5*time.Second, tr.OneWayCallID, 200, 40004, 50004)
	g.RTP(tr, up3, phone, 40004, proxy, 50004, RTPOpts{SSRC: 0x3333, N: 200, FirstSeq: 1, Marker: []int{0, 100}})
	g.DNS(tr, time.Second, 40)
	g.TCPTransfer(tr, 2*time.Second, 45000, 60, map[int]bool{10: true, 30: true, 31: true})
	g.TCPFailures(tr, 4*time.Second)
	return g, tr
}

var rcodeNames = map[layers.DNSResponseCode]string{0: "NoError", 2: "ServFail", 3: "NXDomain"}

// Sort puts the packets in time order, as a capture holds them.
func (g *Gen) Sort() {
	sort.SliceStable(g.Pkts, func(i, j int) bool { return g.Pkts[i].TS < g.Pkts[j].TS })
}

// Busy is a window of d of a busy household line for the benchmark: two
// calls (four RTP streams of 50 packets/s), a DNS query every 150 ms, and
// transfers TCP flows in parallel, each 50 segments of 1000 bytes a second
// with their ACKs.
func Busy(seed uint64, d time.Duration, transfers int) *Gen {
	g := New(seed)
	tr := &Truth{RTP: map[uint32]RTPTruth{}, SIPFinal: map[string]uint64{}, SIPProvisional: map[string]uint64{}, DNSRcodes: map[string]uint64{}}
	n := int(d / (20 * time.Millisecond))
	for c := 0; c < 2; c++ {
		id := fmt.Sprintf("busy-%d@192.168.1.10", c)
		up := g.Call(tr, time.Duration(c)*time.Millisecond, id, 200, 40000+2*c, 50000+2*c)
		g.RTP(tr, up, phone, uint16(40000+2*c), proxy, uint16(50000+2*c), RTPOpts{SSRC: uint32(0x100 + c), N: n - 110, FirstSeq: 1, JitterMs: 5, LossEvery: 100})
		g.RTP(tr, up, proxy, uint16(50000+2*c), phone, uint16(40000+2*c), RTPOpts{SSRC: uint32(0x200 + c), N: n - 110, FirstSeq: 1, JitterMs: 5})
	}
	g.DNS(tr, 0, int(d/(150*time.Millisecond)))
	for i := 0; i < transfers; i++ {
		g.TCPTransfer(tr, time.Duration(i)*time.Millisecond, uint16(45000+i), n-10, map[int]bool{n / 2: true})
	}
	g.Sort()
	return g
}

// Flood is n hosts each starting an RTP-looking stream, a TCP connection,
// a DNS query and a SIP dialog, 100 µs apart: more than any table holds.
func Flood(seed uint64, n int) *Gen {
	g := New(seed)
	for i := 0; i < n; i++ {
		src := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		at := time.Duration(i) * 100 * time.Microsecond
		b := []byte{0x80, 0, 0, 1, 0, 0, 0, 160, byte(i >> 8), byte(i), 0, 1}
		g.UDP(at, src, 20000, "10.200.0.1", 20002, append(b, make([]byte, 20)...))
		b[3], b[7] = 2, 0 // the next packet in sequence: a stream
		b[6] = 1
		g.UDP(at+time.Microsecond, src, 20000, "10.200.0.1", 20002, append(b, make([]byte, 20)...))
		g.TCP(at, src, 40000, "10.200.0.1", 443, layers.TCP{SYN: true, Seq: uint32(i)}, nil)
		g.UDP(at, src, 40000, "10.200.0.2", 53, DNSMsg(uint16(i), false, 0, "x.example"))
		g.UDP(at, src, 5060, "10.200.0.3", 5060, SIPMsg("OPTIONS sip:x SIP/2.0", fmt.Sprintf("c%d", i), "a@b", "c@d", "1 OPTIONS", ""))
	}
	g.Sort()
	return g
}

// tcpSide is one direction of a generated TCP connection: the next
// sequence number it sends.
type tcpSide struct {
	addr string
	port uint16
	seq  uint32
}

// send emits a segment of payload from s to r (ACKing all r sent) and
// advances s.
func (g *Gen) send(at time.Duration, s, r *tcpSide, h layers.TCP, payload []byte) {
	h.Seq, h.Ack, h.ACK = s.seq, r.seq, true
	g.TCP(at, s.addr, s.port, r.addr, r.port, h, payload)
	s.seq += uint32(len(payload))
	if h.FIN {
		s.seq++
	}
}

func lenPrefixed(msgs ...[]byte) []byte {
	var b []byte
	for _, m := range msgs {
		b = append(b, byte(len(m)>>8), byte(len(m)))
		b = append(b, m...)
	}
	return b
}

// DNSOverTCP is DNS over TCP (RFC 7766) in three connections to the
// resolver: two pipelined queries whose first length prefix comes alone
// and whose responses (NoError, NXDomain) are split across three segments,
// one cutting the second length prefix in half; a query never answered
// (the client gives up with FIN after 3 s); and a query whose response the
// server sends again (a retransmission: counted once).
func (g *Gen) DNSOverTCP(tr *Truth, at time.Duration) {
	conn := func(at time.Duration, cport uint16) (c, s *tcpSide) {
		c, s = &tcpSide{phone, cport, 7000}, &tcpSide{"192.168.1.1", 53, 9000}
		tr.TCPConnections++
		g.TCP(at, c.addr, c.port, s.addr, s.port, layers.TCP{SYN: true, Seq: c.seq}, nil)
		c.seq++
		g.TCP(at+time.Millisecond, s.addr, s.port, c.addr, c.port, layers.TCP{SYN: true, ACK: true, Seq: s.seq, Ack: c.seq}, nil)
		s.seq++
		g.send(at+2*time.Millisecond, c, s, layers.TCP{}, nil)
		return c, s
	}
	end := func(at time.Duration, c, s *tcpSide) {
		g.send(at, c, s, layers.TCP{FIN: true}, nil)
		g.send(at+time.Millisecond, s, c, layers.TCP{FIN: true}, nil)
		g.send(at+2*time.Millisecond, c, s, layers.TCP{}, nil)
	}

	c, s := conn(at, 53001)
	q1, q2 := lenPrefixed(DNSMsg(0x5001, false, 0, "tcp1.example.net")), lenPrefixed(DNSMsg(0x5002, false, 0, "tcp2.example.net"))
	g.send(at+10*time.Millisecond, c, s, layers.TCP{PSH: true}, q1[:2])
	g.send(at+11*time.Millisecond, c, s, layers.TCP{PSH: true}, append(q1[2:], q2...))
	tr.DNSQueries += 2
	r := lenPrefixed(DNSMsg(0x5001, true, 0, "tcp1.example.net"), DNSMsg(0x5002, true, 3, "tcp2.example.net"))
	r1len := 2 + int(r[0])<<8 + int(r[1])
	g.send(at+40*time.Millisecond, s, c, layers.TCP{}, r[:12])
	g.send(at+41*time.Millisecond, s, c, layers.TCP{}, r[12:r1len+1])
	g.send(at+42*time.Millisecond, s, c, layers.TCP{PSH: true}, r[r1len+1:])
	tr.DNSRcodes["NoError"]++
	tr.DNSRcodes["NXDomain"]++
	g.send(at+43*time.Millisecond, c, s, layers.TCP{}, nil)
	end(at+100*time.Millisecond, c, s)

	c, s = conn(at+200*time.Millisecond, 53002)
	g.send(at+210*time.Millisecond, c, s, layers.TCP{PSH: true}, lenPrefixed(DNSMsg(0x5003, false, 0, "tcp3.example.net")))
	g.send(at+215*time.Millisecond, s, c, layers.TCP{}, nil)
	tr.DNSQueries++
	tr.DNSUnanswered++
	end(at+3210*time.Millisecond, c, s)

	c, s = conn(at+400*time.Millisecond, 53003)
	g.send(at+410*time.Millisecond, c, s, layers.TCP{PSH: true}, lenPrefixed(DNSMsg(0x5004, false, 0, "tcp4.example.net")))
	tr.DNSQueries++
	resp := lenPrefixed(DNSMsg(0x5004, true, 0, "tcp4.example.net"))
	g.send(at+430*time.Millisecond, s, c, layers.TCP{PSH: true}, resp)
	s.seq -= uint32(len(resp)) // the ACK was lost beyond the probe: sent again
	g.send(at+730*time.Millisecond, s, c, layers.TCP{PSH: true}, resp)
	tr.TCPRetrans++
	tr.DNSRcodes["NoError"]++
	g.send(at+731*time.Millisecond, c, s, layers.TCP{}, nil)
	end(at+800*time.Millisecond, c, s)
}

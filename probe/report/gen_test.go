package report

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
	"github.com/presscap/presscap/probe/pcapfile"
)

// The traffic generator: VoIP, DNS and TCP with known loss, reordering,
// jitter and failures, written with the project's PCAP writer. Its truth
// is what the generator injected.

type genPacket struct {
	ts   int64
	data []byte
}

type gen struct {
	t0   int64
	pkts []genPacket
	rnd  *rand.Rand
}

// truth is what the generator injected.
type truth struct {
	rtp            map[uint32]rtpTruth // by SSRC
	sipFinal       map[string]uint64   // final response code -> messages
	sipProvisional map[string]uint64
	calls          int
	dnsQueries     uint64
	dnsUnanswered  uint64
	dnsRcodes      map[string]uint64
	tcpConnections uint64
	tcpRetrans     uint64
	tcpResets      uint64
	tcpFailed      uint64
	oneWayCallID   string
	failedCallID   string
}

type rtpTruth struct {
	packets uint64
	lost    int64
}

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
)

func newGen(seed uint64) *gen {
	return &gen{t0: time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC).UnixNano(), rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b9))}
}

func (g *gen) emit(at time.Duration, ls ...gopacket.SerializableLayer) {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		panic(err)
	}
	g.pkts = append(g.pkts, genPacket{g.t0 + int64(at), bytes.Clone(buf.Bytes())})
}

func ip4(s string) net.IP { return net.ParseIP(s).To4() }

func (g *gen) udp(at time.Duration, src string, sport uint16, dst string, dport uint16, payload []byte) {
	eth := &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: ip4(src), DstIP: ip4(dst)}
	u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	u.SetNetworkLayerForChecksum(ip)
	g.emit(at, eth, ip, u, gopacket.Payload(payload))
}

func (g *gen) tcp(at time.Duration, src string, sport uint16, dst string, dport uint16, h layers.TCP, payload []byte) {
	eth := &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: ip4(src), DstIP: ip4(dst)}
	h.SrcPort, h.DstPort = layers.TCPPort(sport), layers.TCPPort(dport)
	if h.Window == 0 && !h.RST {
		h.Window = 64000
	}
	h.SetNetworkLayerForChecksum(ip)
	g.emit(at, eth, ip, &h, gopacket.Payload(payload))
}

// write sorts the packets by time and writes a classic PCAP.
func (g *gen) write(t testing.TB, name string) string {
	sort.SliceStable(g.pkts, func(i, j int) bool { return g.pkts[i].ts < g.pkts[j].ts })
	path := filepath.Join(t.TempDir(), name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcapfile.NewWriter(f, "pcap", []pcapfile.Interface{{Name: "eth0", LinkType: 1}}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range g.pkts {
		if err := w.WritePacket(0, p.ts, uint32(len(p.data)), p.data); err != nil {
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

func sipMsg(first, callID, from, to, cseq string, sdp string) []byte {
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

func sdpBody(addr string, port int, pts string, maps string) string {
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP %s\r\n%s", addr, addr, port, pts, maps)
}

const (
	phone = "192.168.1.10"
	proxy = "203.0.113.5"
)

// call generates one SIP call from the phone; answer is the final code
// (200 answers with SDP). It returns the time the call is set up.
func (g *gen) call(tr *truth, at time.Duration, callID string, answer int, phonePort, farPort int) time.Duration {
	tr.calls++
	from, to := "alice@example.net", "bob@example.net"
	inv := sipMsg("INVITE sip:bob@example.net SIP/2.0", callID, from, to, "1 INVITE",
		sdpBody(phone, phonePort, "0 101", "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"))
	g.udp(at, phone, 5060, proxy, 5060, inv)
	g.udp(at+30*time.Millisecond, proxy, 5060, phone, 5060, sipMsg("SIP/2.0 100 Trying", callID, from, to, "1 INVITE", ""))
	g.udp(at+200*time.Millisecond, proxy, 5060, phone, 5060, sipMsg("SIP/2.0 180 Ringing", callID, from, to, "1 INVITE", ""))
	tr.sipProvisional["100"]++
	tr.sipProvisional["180"]++
	code := fmt.Sprint(answer)
	tr.sipFinal[code]++
	if answer == 200 {
		g.udp(at+2*time.Second, proxy, 5060, phone, 5060, sipMsg("SIP/2.0 200 OK", callID, from, to, "1 INVITE",
			sdpBody(proxy, farPort, "0", "a=rtpmap:0 PCMU/8000\r\n")))
	} else {
		g.udp(at+2*time.Second, proxy, 5060, phone, 5060, sipMsg("SIP/2.0 "+code+" Busy Here", callID, from, to, "1 INVITE", ""))
	}
	g.udp(at+2*time.Second+20*time.Millisecond, phone, 5060, proxy, 5060, sipMsg("ACK sip:bob@example.net SIP/2.0", callID, from, to, "1 ACK", ""))
	return at + 2*time.Second + 40*time.Millisecond
}

func (g *gen) bye(tr *truth, at time.Duration, callID string) {
	from, to := "alice@example.net", "bob@example.net"
	g.udp(at, phone, 5060, proxy, 5060, sipMsg("BYE sip:bob@example.net SIP/2.0", callID, from, to, "2 BYE", ""))
	g.udp(at+40*time.Millisecond, proxy, 5060, phone, 5060, sipMsg("SIP/2.0 200 OK", callID, from, to, "2 BYE", ""))
	tr.sipFinal["200"]++
}

// rtpOpts are the faults injected into one stream.
type rtpOpts struct {
	ssrc      uint32
	n         int
	firstSeq  uint16
	lossEvery int     // drop one packet in lossEvery (0: none)
	burst     [2]int  // drop packets [burst[0], burst[1])
	swap      []int   // send packet i after packet i+1
	dup       []int   // send packet i twice
	jitterMs  float64 // uniform arrival noise, 0..jitterMs
	gap       [2]int  // packet gap[0] arrives gap[1] ms late, the rest keep their times
	marker    []int
	pt        uint8
}

// rtp generates one stream of 20 ms packets and records its truth: the
// packets the capture holds and tshark's lost (expected minus received,
// expected from the first and last sequence numbers).
func (g *gen) rtp(tr *truth, at time.Duration, src string, sport uint16, dst string, dport uint16, o rtpOpts) {
	type p struct {
		at  time.Duration
		seq uint16
		idx int
	}
	var ps []p
	received := 0
	for i := 0; i < o.n; i++ {
		if o.lossEvery > 0 && i%o.lossEvery == o.lossEvery/2 && i != o.n-1 && i != 0 {
			continue
		}
		if i >= o.burst[0] && i < o.burst[1] {
			continue
		}
		t := at + time.Duration(i)*20*time.Millisecond
		if o.jitterMs > 0 {
			t += time.Duration(g.rnd.Float64() * o.jitterMs * float64(time.Millisecond))
		}
		if o.gap[1] > 0 && i == o.gap[0] {
			t += time.Duration(o.gap[1]) * time.Millisecond
		}
		ps = append(ps, p{t, o.firstSeq + uint16(i), i})
		received++
		for _, d := range o.dup {
			if d == i {
				ps = append(ps, p{t + time.Millisecond, o.firstSeq + uint16(i), i})
				received++
			}
		}
	}
	for _, s := range o.swap {
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
		b[1] = o.pt
		for _, m := range o.marker {
			if m == x.idx {
				b[1] |= 0x80
			}
		}
		b[2], b[3] = byte(x.seq>>8), byte(x.seq)
		ts := uint32(1000 + 160*x.idx)
		b[4], b[5], b[6], b[7] = byte(ts>>24), byte(ts>>16), byte(ts>>8), byte(ts)
		b[8], b[9], b[10], b[11] = byte(o.ssrc>>24), byte(o.ssrc>>16), byte(o.ssrc>>8), byte(o.ssrc)
		g.udp(x.at, src, sport, dst, dport, b)
	}
	last := ps[len(ps)-1]
	expected := int64(uint16(last.seq-ps[0].seq)) + 1
	tr.rtp[o.ssrc] = rtpTruth{packets: uint64(received), lost: expected - int64(received)}
}

func dnsMsg(id uint16, resp bool, rcode layers.DNSResponseCode, name string) []byte {
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
func (g *gen) dns(tr *truth, at time.Duration, n int) {
	for i := 0; i < n; i++ {
		t := at + time.Duration(i)*150*time.Millisecond
		id := uint16(0x1000 + i)
		port := uint16(40000 + i)
		name := fmt.Sprintf("host%d.example.net", i)
		g.udp(t, phone, port, "192.168.1.1", 53, dnsMsg(id, false, 0, name))
		tr.dnsQueries++
		if i%10 == 3 {
			tr.dnsUnanswered++
			continue
		}
		rc := layers.DNSResponseCode(0)
		switch {
		case i%7 == 2:
			rc = 3
		case i%13 == 5:
			rc = 2
		}
		tr.dnsRcodes[rcodeName(rc)]++
		lat := 20 * time.Millisecond
		if i%11 == 4 {
			lat = 800 * time.Millisecond
		}
		g.udp(t+lat, "192.168.1.1", 53, phone, port, dnsMsg(id, true, rc, name))
	}
}

var flagsSyn = layers.TCP{SYN: true}

// tcpTransfer is a connection that sends n segments from the server,
// losing (after the capture point) the segments in lose, each resent
// after 300 ms.
func (g *gen) tcpTransfer(tr *truth, at time.Duration, cport uint16, n int, lose map[int]bool) {
	c, s := phone, "198.51.100.20"
	cs, ss := uint32(1000), uint32(5000)
	tr.tcpConnections++
	g.tcp(at, c, cport, s, 443, layers.TCP{SYN: true, Seq: cs}, nil)
	g.tcp(at+10*time.Millisecond, s, 443, c, cport, layers.TCP{SYN: true, ACK: true, Seq: ss, Ack: cs + 1}, nil)
	g.tcp(at+20*time.Millisecond, c, cport, s, 443, layers.TCP{ACK: true, Seq: cs + 1, Ack: ss + 1}, nil)
	t := at + 30*time.Millisecond
	seq := ss + 1
	const mss = 1000
	payload := make([]byte, mss)
	for i := 0; i < n; i++ {
		g.tcp(t, s, 443, c, cport, layers.TCP{ACK: true, PSH: true, Seq: seq, Ack: cs + 1}, payload)
		if lose[i] {
			// Lost beyond the probe: no ACK; the server resends after its RTO.
			g.tcp(t+300*time.Millisecond, s, 443, c, cport, layers.TCP{ACK: true, PSH: true, Seq: seq, Ack: cs + 1}, payload)
			tr.tcpRetrans++
			t += 300 * time.Millisecond
		}
		g.tcp(t+10*time.Millisecond, c, cport, s, 443, layers.TCP{ACK: true, Seq: cs + 1, Ack: seq + mss}, nil)
		seq += mss
		t += 20 * time.Millisecond
	}
	g.tcp(t, c, cport, s, 443, layers.TCP{FIN: true, ACK: true, Seq: cs + 1, Ack: seq}, nil)
	g.tcp(t+10*time.Millisecond, s, 443, c, cport, layers.TCP{FIN: true, ACK: true, Seq: seq, Ack: cs + 2}, nil)
	g.tcp(t+20*time.Millisecond, c, cport, s, 443, layers.TCP{ACK: true, Seq: cs + 2, Ack: seq + 1}, nil)
}

// tcpFailures: a SYN never answered (resent twice: two retransmissions),
// and one refused with RST.
func (g *gen) tcpFailures(tr *truth, at time.Duration) {
	s := "198.51.100.30"
	for _, d := range []time.Duration{0, time.Second, 3 * time.Second} {
		g.tcp(at+d, phone, 50001, s, 443, layers.TCP{SYN: true, Seq: 777}, nil)
	}
	tr.tcpConnections++
	tr.tcpRetrans += 2
	tr.tcpFailed++
	g.tcp(at, phone, 50002, s, 8080, layers.TCP{SYN: true, Seq: 999}, nil)
	g.tcp(at+5*time.Millisecond, s, 8080, phone, 50002, layers.TCP{RST: true, ACK: true, Seq: 0, Ack: 1000}, nil)
	tr.tcpConnections++
	tr.tcpFailed++
	tr.tcpResets++
}

// voipDNSTCP is the mixed test traffic: three calls (answered with loss,
// jitter, reordering and a duplicate on the phone's stream and 12 % loss
// on the other leg; failed with 486; answered with one-way audio), DNS
// with failures and TCP with retransmissions and failed connections.
func voipDNSTCP(seed uint64) (*gen, *truth) {
	g := newGen(seed)
	tr := &truth{rtp: map[uint32]rtpTruth{}, sipFinal: map[string]uint64{}, sipProvisional: map[string]uint64{}, dnsRcodes: map[string]uint64{}}
	up := g.call(tr, 0, "call-ok@192.168.1.10", 200, 40000, 50000)
	g.rtp(tr, up, phone, 40000, proxy, 50000, rtpOpts{ssrc: 0x1111, n: 500, firstSeq: 65400,
		burst: [2]int{100, 105}, swap: []int{300}, dup: []int{400}, jitterMs: 8, gap: [2]int{450, 150}})
	g.rtp(tr, up+5*time.Millisecond, proxy, 50000, phone, 40000, rtpOpts{ssrc: 0x2222, n: 500, firstSeq: 10, lossEvery: 8, jitterMs: 2})
	g.bye(tr, up+11*time.Second, "call-ok@192.168.1.10")
	tr.failedCallID = "call-busy@192.168.1.10"
	g.call(tr, 3*time.Second, tr.failedCallID, 486, 40002, 0)
	tr.oneWayCallID = "call-oneway@192.168.1.10"
	up3 := g.call(tr, 5*time.Second, tr.oneWayCallID, 200, 40004, 50004)
	g.rtp(tr, up3, phone, 40004, proxy, 50004, rtpOpts{ssrc: 0x3333, n: 200, firstSeq: 1, marker: []int{0, 100}})
	g.dns(tr, time.Second, 40)
	g.tcpTransfer(tr, 2*time.Second, 45000, 60, map[int]bool{10: true, 30: true, 31: true})
	g.tcpFailures(tr, 4*time.Second)
	return g, tr
}

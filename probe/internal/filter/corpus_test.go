package filter

import (
	"encoding/binary"
	"fmt"
	"math/rand"
)

// The test corpus: Ethernet frames built byte by byte, so that every field
// the expressions look at takes both matching and non-matching values,
// including the awkward cases (IPv4 options and fragments, IPv6 extension
// headers, one and two VLAN tags, 802.3 frames, truncation).

type frame struct {
	name      string
	data      []byte
	truncated bool // cut short of the headers it was built with
}

type vlanTag struct {
	tpid uint16
	tci  uint16
}

var (
	macA  = []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55}
	macB  = []byte{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}
	macBC = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	macMC = []byte{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}
	macs  = [][]byte{macA, macB, macBC, macMC}

	ip4s = [][4]byte{{10, 0, 0, 1}, {10, 0, 0, 2}, {192, 168, 1, 1}, {1, 2, 3, 4}, {224, 0, 0, 5}, {255, 255, 255, 255}, {172, 16, 5, 9}, {0, 0, 0, 0}}
	ip6s = [][16]byte{
		v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
		v6(0x2001, 0xdb8, 0x8000, 0, 0, 0, 0, 7), v6(0xfe80, 0, 0, 0, 0, 0, 0, 1), v6(0xff02, 0, 0, 0, 0, 0, 0, 1),
		v6(0x2001, 0xdb9, 0, 0, 0, 0, 0, 1),
	}
	ports = []uint16{53, 80, 443, 22, 5060, 10000, 15000, 20000, 20001, 1234, 0, 65535}
)

func v6(w ...uint16) [16]byte {
	var a [16]byte
	for i, x := range w {
		binary.BigEndian.PutUint16(a[2*i:], x)
	}
	return a
}

func be16(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }

func eth(dst, src []byte, tags []vlanTag, etype uint16, payload []byte) []byte {
	b := append(append([]byte{}, dst...), src...)
	for _, t := range tags {
		b = append(b, be16(t.tpid)...)
		b = append(b, be16(t.tci)...)
	}
	b = append(b, be16(etype)...)
	return append(b, payload...)
}

// ipv4 builds a header with options opts (padded to 4 bytes) and the
// fragment field frag (flags and offset).
func ipv4(src, dst [4]byte, proto byte, opts []byte, frag uint16, payload []byte) []byte {
	for len(opts)%4 != 0 {
		opts = append(opts, 0)
	}
	hl := 20 + len(opts)
	b := make([]byte, hl)
	b[0] = 0x40 | byte(hl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(hl+len(payload)))
	binary.BigEndian.PutUint16(b[4:], 0x1234)
	binary.BigEndian.PutUint16(b[6:], frag)
	b[8] = 64
	b[9] = proto
	copy(b[12:], src[:])
	copy(b[16:], dst[:])
	copy(b[20:], opts)
	return append(b, payload...)
}

// ipv6 builds a header followed by extension headers exts (each: next
// header type of the extension itself), then the upper layer proto.
func ipv6(src, dst [16]byte, exts []byte, proto byte, payload []byte) []byte {
	var ext []byte
	for i, e := range exts {
		next := proto
		if i+1 < len(exts) {
			next = exts[i+1]
		}
		if e == ipprotoFrag {
			ext = append(ext, next, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef)
		} else {
			ext = append(ext, next, 0, 1, 4, 0, 0, 0, 0)
		}
	}
	b := make([]byte, 40)
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(ext)+len(payload)))
	b[6] = proto
	if len(exts) > 0 {
		b[6] = exts[0]
	}
	b[7] = 64
	copy(b[8:], src[:])
	copy(b[24:], dst[:])
	return append(append(b, ext...), payload...)
}

func tcpHdr(sport, dport uint16, flags byte) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12] = 5 << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], 1024)
	return append(b, []byte("payload")...)
}

// pad appends n bytes of filler, so that frame lengths vary.
func pad(b []byte, n int) []byte { return append(b, make([]byte, n)...) }

func udpHdr(sport, dport uint16) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], 8+4)
	return append(b, 1, 2, 3, 4)
}

func sctpHdr(sport, dport uint16) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	return append(b, 1, 0, 0, 4) // INIT chunk header
}

func icmpHdr(typ, code byte) []byte { return []byte{typ, code, 0, 0, 0, 1, 0, 1, 'p', 'i', 'n', 'g'} }

func arpBody(op uint16, spa, tpa [4]byte) []byte {
	b := []byte{0, 1, 8, 0, 6, 4}
	b = append(b, be16(op)...)
	b = append(b, macA...)
	b = append(b, spa[:]...)
	b = append(b, macB...)
	return append(b, tpa[:]...)
}

// buildCorpus returns the frames, deterministic for a seed.
func buildCorpus(seed int64) []frame {
	r := rand.New(rand.NewSource(seed))
	var out []frame
	add := func(name string, b []byte) { out = append(out, frame{name: name, data: b}) }
	pick4 := func() [4]byte { return ip4s[r.Intn(len(ip4s))] }
	pick6 := func() [16]byte { return ip6s[r.Intn(len(ip6s))] }
	port := func() uint16 {
		if r.Intn(2) == 0 {
			return ports[r.Intn(5)]
		}
		return ports[r.Intn(len(ports))]
	}
	tagSets := [][]vlanTag{
		nil,
		{{eth8021Q, 100}},
		{{eth8021Q, 0x2000 | 200}},
		{{eth8021AD, 100}, {eth8021Q, 200}},
		{{eth8021QinQ, 4095}},
		{{eth8021Q, 0}, {eth8021Q, 100}},
	}
	transports := func(tr int, sp, dp uint16) (byte, []byte) {
		switch tr {
		case 0:
			flags := []byte{0x02, 0x12, 0x10, 0x11, 0x04, 0x18, 0xc2}[r.Intn(7)]
			return ipprotoTCP, tcpHdr(sp, dp, flags)
		case 1:
			return ipprotoUDP, udpHdr(sp, dp)
		case 2:
			return ipprotoSCTP, sctpHdr(sp, dp)
		case 3:
			return ipprotoICMP, icmpHdr([]byte{0, 8, 3, 11}[r.Intn(4)], byte(r.Intn(2)))
		case 4:
			return 47, []byte{0, 0, 0x08, 0x00, 1, 2, 3, 4} // GRE
		case 5:
			return ipprotoIGMP, []byte{0x11, 0, 0, 0, 224, 0, 0, 1}
		}
		return []byte{ipprotoPIM, ipprotoVRRP, ipprotoAH, ipprotoESP}[r.Intn(4)], make([]byte, 16)
	}
	// IPv4: every transport with and without options, fragments, tags.
	pickTags := func() []vlanTag {
		if r.Intn(2) == 0 {
			return nil
		}
		return tagSets[r.Intn(len(tagSets))]
	}
	pair4 := func() (a, b [4]byte) {
		a = pick4()
		if r.Intn(6) == 0 {
			return a, a
		}
		return a, pick4()
	}
	pair6 := func() (a, b [16]byte) {
		a = pick6()
		if r.Intn(6) == 0 {
			return a, a
		}
		return a, pick6()
	}
	portPair := func() (a, b uint16) {
		a = port()
		if r.Intn(3) == 0 {
			return a, a
		}
		return a, port()
	}
	for i := 0; i < 300; i++ {
		tags := pickTags()
		tr := r.Intn(7)
		sp, dp := portPair()
		proto, pl := transports(tr, sp, dp)
		var opts []byte
		if r.Intn(3) == 0 {
			opts = []byte{0x94, 0x04, 0, 0} // router alert
			if r.Intn(2) == 0 {
				opts = append(opts, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00)
			}
		}
		frag := []uint16{0, 0, 0, 0x4000, 0x2000, 0x0010, 0x2020}[r.Intn(7)]
		dst, src := macs[r.Intn(len(macs))], macs[r.Intn(2)]
		sa, da := pair4()
		pl = pad(pl, []int{0, 0, 7, 26, 100, 400}[r.Intn(6)])
		add(fmt.Sprintf("ipv4-%d", i), eth(dst, src, tags, ethIP, ipv4(sa, da, proto, opts, frag, pl)))
	}
	// IPv6 with and without extension headers.
	extSets := [][]byte{nil, nil, {0}, {ipprotoFrag}, {0, 43}, {60}, {0, ipprotoFrag}}
	for i := 0; i < 200; i++ {
		tags := pickTags()
		var proto byte
		var pl []byte
		switch r.Intn(5) {
		case 0:
			sp, dp := portPair()
			proto, pl = ipprotoTCP, tcpHdr(sp, dp, []byte{0x02, 0x12, 0x10}[r.Intn(3)])
		case 1:
			sp, dp := portPair()
			proto, pl = ipprotoUDP, udpHdr(sp, dp)
		case 2:
			sp, dp := portPair()
			proto, pl = ipprotoSCTP, sctpHdr(sp, dp)
		case 3:
			proto, pl = ipprotoICMPv6, icmpHdr([]byte{128, 129, 135, 136, 1}[r.Intn(5)], 0)
		default:
			proto = []byte{47, ipprotoPIM, ipprotoAH, ipprotoESP}[r.Intn(4)]
			pl = []byte{0, 0, 0x86, 0xdd, 0, 0, 0, 0}
		}
		exts := extSets[r.Intn(len(extSets))]
		dst := macs[r.Intn(len(macs))]
		sa, da := pair6()
		pl = pad(pl, []int{0, 0, 7, 26, 100, 400}[r.Intn(6)])
		add(fmt.Sprintf("ipv6-%d", i), eth(dst, macA, tags, ethIPv6, ipv6(sa, da, exts, proto, pl)))
	}
	// ARP and RARP.
	for i := 0; i < 60; i++ {
		et := uint16(ethARP)
		if i%3 == 2 {
			et = ethRARP
		}
		sa, da := pair4()
		add(fmt.Sprintf("arp-%d", i), eth(macs[r.Intn(3)], macA, tagSets[i%4/3], et, arpBody(uint16(1+r.Intn(2)), sa, da)))
	}
	// IGRP, which the random IPv4 frames do not carry.
	for i, tags := range tagSets[:2] {
		add(fmt.Sprintf("igrp-%d", i), eth(macA, macB, tags, ethIP, ipv4([4]byte{10, 0, 0, 1}, [4]byte{224, 0, 0, 10}, ipprotoIGRP, nil, 0, make([]byte, 20))))
	}
	// Non-IP Ethernet II and 802.3/LLC frames.
	others := []struct {
		name  string
		etype uint16
		body  []byte
	}{
		{"lldp", 0x88cc, make([]byte, 30)},
		{"ipx-ii", ethIPX, make([]byte, 30)},
		{"atalk-ii", ethATalk, make([]byte, 30)},
		{"aarp-ii", ethAARP, make([]byte, 30)},
		{"decnet", 0x6003, make([]byte, 30)},
		{"lat", 0x6004, make([]byte, 30)},
		{"sca", 0x6007, make([]byte, 30)},
		{"moprc", 0x6002, make([]byte, 30)},
		{"mopdl", 0x6001, make([]byte, 30)},
		{"loopback", 0x9000, make([]byte, 30)},
		{"stp", 38, []byte{0x42, 0x42, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"llc-ipx", 40, append([]byte{0xe0, 0xe0, 0x03}, make([]byte, 37)...)},
		{"raw-ipx", 40, append([]byte{0xff, 0xff}, make([]byte, 38)...)},
		{"snap-ipx", 40, append([]byte{0xaa, 0xaa, 0x03, 0, 0, 0, 0x81, 0x37}, make([]byte, 32)...)},
		{"snap-atalk", 40, append([]byte{0xaa, 0xaa, 0x03, 0x08, 0x00, 0x07, 0x80, 0x9b}, make([]byte, 32)...)},
		{"snap-aarp", 40, append([]byte{0xaa, 0xaa, 0x03, 0, 0, 0, 0x80, 0xf3}, make([]byte, 32)...)},
		{"llc-iso", 40, append([]byte{0xfe, 0xfe, 0x03}, make([]byte, 37)...)},
		{"llc-netbeui", 40, append([]byte{0xf0, 0xf0, 0x03}, make([]byte, 37)...)},
		{"llc-ip", 40, append([]byte{0x06, 0x06, 0x03}, make([]byte, 37)...)},
		{"llc-100", 40, append([]byte{100, 100, 0x03}, make([]byte, 37)...)},
		{"len-1500", 1500, append([]byte{0x42, 0x42, 0x03}, make([]byte, 37)...)},
		{"type-1501", 1501, make([]byte, 30)},
		{"pppoe", 0x8864, make([]byte, 30)},
		{"mpls", 0x8847, make([]byte, 30)},
	}
	for i, o := range others {
		for j, tags := range tagSets[:3] {
			add(fmt.Sprintf("%s-%d-%d", o.name, i, j), eth(macs[(i+j)%4], macB, tags, o.etype, o.body))
		}
	}
	// Truncated copies: cut at every interesting boundary and at random.
	n := len(out)
	for i := 0; i < n; i += 3 {
		b := out[i].data
		cuts := []int{r.Intn(len(b)), 13, 14, 20, 30, 34, 38, 40, 54, 56, 58, 62}
		c := cuts[r.Intn(len(cuts))]
		if c >= len(b) {
			c = len(b) - 1
		}
		out = append(out, frame{fmt.Sprintf("%s-cut%d", out[i].name, c), append([]byte(nil), b[:c]...), true})
	}
	out = append(out, frame{"empty", nil, true}, frame{"tiny", []byte{1, 2, 3}, true})
	return out
}

package service

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/probe/config"
)

// ipv4Frame is an Ethernet frame carrying IPv4 and a TCP (proto 6) or UDP
// (17) segment to dport with a payload of size bytes numbered by seq.
func ipv4Frame(proto byte, dport uint16, size int, seq int) []byte {
	f := []byte{0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00}
	l4 := 8
	if proto == 6 {
		l4 = 20
	}
	ip := make([]byte, 20)
	ip[0], ip[8], ip[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(ip[2:], uint16(20+l4+size))
	binary.BigEndian.PutUint16(ip[4:], uint16(seq))
	copy(ip[12:], []byte{192, 168, 77, 2})
	copy(ip[16:], []byte{192, 168, 77, 1})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	hdr := make([]byte, l4)
	binary.BigEndian.PutUint16(hdr[0:], 40000+uint16(seq))
	binary.BigEndian.PutUint16(hdr[2:], dport)
	if proto == 6 {
		hdr[12], hdr[13] = 5<<4, 0x18 // header length 20, PSH ACK
	} else {
		binary.BigEndian.PutUint16(hdr[4:], uint16(8+size))
	}
	payload := bytes.Repeat([]byte{byte(seq)}, size)
	return append(append(append(f, ip...), hdr...), payload...)
}

// TestDefaultRulesSliceTLSKeepSIP: with the default ring rules, a TLS
// record (TCP to 443) is kept cut to its headers and a SIP message (UDP to
// 5060) whole, exactly as tcpdump -s 160 and tcpdump -s 0 see them on the
// same veth; the manifest's count matches the file.
func TestDefaultRulesSliceTLSKeepSIP(t *testing.T) {
	netnstest.Require(t, "ip", "tcpdump")
	pair := netnstest.NewPair(t)
	c := permConfig(t, pair.Host)
	def := config.DefaultConfig().Ring
	c.Ring.Rules, c.Ring.Snaplen = def.Rules, def.Snaplen
	tls := netnstest.StartTcpdump(t, pair.Host, config.HeaderSnap, "tcp port 443")
	sip := netnstest.StartTcpdump(t, pair.Host, 262144, "udp port 5060")
	r := startService(t, c, nil)
	sender, _, _ := warmUp(t, r, pair)
	p, err := r.svc.Trigger("local", "")
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		if err := sender.Send(ipv4Frame(6, 443, 1200, i), ipv4Frame(17, 5060, 700, i)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	res := r.waitExport(t, 20*time.Second)
	if res.err != nil {
		t.Fatalf("export: %v\nlog:\n%s", res.err, r.log)
	}
	got := readPCAP(t, filepath.Join(c.Storage.PermDir, c.Storage.QueueDir, res.man.Files[0].File))
	wantTLS := inWindow(tls.Settle(t, netnstest.AtLeast(n)), res.man)
	wantSIP := inWindow(sip.Settle(t, netnstest.AtLeast(n)), res.man)
	if len(wantTLS) != n || len(wantSIP) != n {
		t.Fatalf("tcpdump saw %d TLS and %d SIP packets in the window (press %v), want %d each", len(wantTLS), len(wantSIP), p.Time, n)
	}
	var gotTLS, gotSIP []pkt
	for _, q := range got {
		switch {
		case len(q.data) > 37 && q.data[23] == 6 && binary.BigEndian.Uint16(q.data[36:]) == 443:
			gotTLS = append(gotTLS, q)
		case len(q.data) > 37 && q.data[23] == 17 && binary.BigEndian.Uint16(q.data[36:]) == 5060:
			gotSIP = append(gotSIP, q)
		}
	}
	for _, tc := range []struct {
		what      string
		got       []pkt
		want      []netnstest.Packet
		keep, len int
	}{{"TLS", gotTLS, wantTLS, config.HeaderSnap, 14 + 20 + 20 + 1200}, {"SIP", gotSIP, wantSIP, 14 + 20 + 8 + 700, 14 + 20 + 8 + 700}} {
		if len(tc.got) != len(tc.want) {
			t.Fatalf("%s: the file holds %d packets, tcpdump saw %d", tc.what, len(tc.got), len(tc.want))
		}
		for i := range tc.got {
			g, w := tc.got[i], tc.want[i]
			if g.ts != w.Time || !bytes.Equal(g.data, w.Data) || int(g.origLen) != w.OrigLen || len(g.data) != tc.keep || int(g.origLen) != tc.len {
				t.Fatalf("%s packet %d: kept %d of %d bytes, tcpdump %d of %d; want %d of %d", tc.what, i, len(g.data), g.origLen, len(w.Data), w.OrigLen, tc.keep, tc.len)
			}
		}
	}
}

package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/presscap/presscap/internal/testing/testtool"
)

type pkt struct {
	iface int
	t     int64
	orig  uint32
	data  []byte
}

var pkts = []pkt{
	{0, 1_767_225_600_123_456_789, 60, bytes.Repeat([]byte{0xaa}, 60)},
	{1, 1_767_225_600_223_456_789, 1500, bytes.Repeat([]byte{0xbb}, 61)}, // sliced
	{0, 1_767_225_599_000_000_001, 3, []byte{1, 2, 3}},                   // clock went back
}

func write(t *testing.T, format string, ifaces []Interface) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := NewWriter(&b, format, ifaces, "a window")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if err := w.WritePacket(min(p.iface, len(ifaces)-1), p.t, p.orig, p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func readBack(t *testing.T, b []byte) ([]pkt, []Interface) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var got []pkt
	for {
		p, err := r.Next()
		if err == io.EOF {
			return got, r.Interfaces()
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, pkt{p.Iface, p.Time, p.OrigLen, bytes.Clone(p.Data)})
	}
}

// tshark checks a file with the real tools and returns tshark's field output.
func tshark(t *testing.T, b []byte, fields ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f")
	os.WriteFile(path, b, 0o644)
	if out, err := exec.Command(testtool.Path(t, "capinfos", "wireshark-common"), path).CombinedOutput(); err != nil {
		t.Fatalf("capinfos rejects the file: %v\n%s", err, out)
	}
	tshark := testtool.Path(t, "tshark", "tshark")
	args := []string{"-r", path, "-T", "fields"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command(tshark, args...).Output()
	if err != nil {
		t.Fatalf("tshark -r: %v", err)
	}
	return string(out)
}

func TestPCAPRoundTripAndTshark(t *testing.T) {
	b := write(t, "pcap", []Interface{{Name: "eth0", LinkType: 1, SnapLen: 65535}})
	got, ifs := readBack(t, b)
	for i := range pkts {
		w := pkts[i]
		w.iface = 0
		if g := got[i]; g.t != w.t || g.orig != w.orig || !bytes.Equal(g.data, w.data) || g.iface != 0 {
			t.Errorf("packet %d: %+v, want %+v", i, g, w)
		}
	}
	if len(ifs) != 1 || ifs[0].LinkType != 1 || ifs[0].SnapLen != 65535 {
		t.Errorf("interfaces %+v", ifs)
	}
	out := tshark(t, b, "frame.time_epoch", "frame.len", "frame.cap_len")
	want := "1767225600.123456789\t60\t60\n1767225600.223456789\t1500\t61\n1767225599.000000001\t3\t3\n"
	if out != want {
		t.Errorf("tshark sees\n%s\nwant\n%s", out, want)
	}
}

func TestPCAPNGRoundTripAndTshark(t *testing.T) {
	ifaces := []Interface{{Name: "eth0", LinkType: 1}, {Name: "wlan0", LinkType: 127, SnapLen: 200}}
	b := write(t, "pcapng", ifaces)
	got, ifs := readBack(t, b)
	for i, w := range pkts {
		if g := got[i]; g.iface != w.iface || g.t != w.t || g.orig != w.orig || !bytes.Equal(g.data, w.data) {
			t.Errorf("packet %d: %+v, want %+v", i, g, w)
		}
	}
	if len(ifs) != 2 || ifs[1].Name != "wlan0" || ifs[1].LinkType != 127 || ifs[0].SnapLen != DefaultSnapLen {
		t.Errorf("interfaces %+v", ifs)
	}
	out := tshark(t, b, "frame.time_epoch", "frame.interface_name", "frame.len")
	want := "1767225600.123456789\teth0\t60\n1767225600.223456789\twlan0\t1500\n1767225599.000000001\teth0\t3\n"
	if out != want {
		t.Errorf("tshark sees\n%s\nwant\n%s", out, want)
	}
}

// TestPCAPNGDirectionAndSide: an inbound interface's packets carry
// epb_flags direction inbound, its description the side; the reader and
// tshark read the packets as without them, and the reader the side.
func TestPCAPNGDirectionAndSide(t *testing.T) {
	ifaces := []Interface{{Name: "eth0", LinkType: 1, Description: "side router", Inbound: true}, {Name: "eth1", LinkType: 1}}
	b := write(t, "pcapng", ifaces)
	got, back := readBack(t, b)
	if len(back) != 2 || back[0].Description != "side router" || back[1].Description != "" {
		t.Errorf("interfaces read back %+v: the side is lost", back)
	}
	for i, w := range pkts {
		if g := got[i]; g.iface != w.iface || g.t != w.t || g.orig != w.orig || !bytes.Equal(g.data, w.data) {
			t.Errorf("packet %d: %+v, want %+v", i, g, w)
		}
	}
	out := tshark(t, b, "frame.interface_name", "frame.interface_description", "frame.packet_flags_direction", "frame.len")
	want := "eth0\tside router\t0x00000001\t60\neth1\t\t\t1500\neth0\tside router\t0x00000001\t3\n" // direction 1: inbound
	if out != want {
		t.Errorf("tshark sees\n%s\nwant\n%s", out, want)
	}
}

// Files written by editcap in other flavours (microseconds, pcapng with
// microsecond resolution) read with the right times.
func TestReadsEditcapFlavours(t *testing.T) {
	editcap := testtool.Path(t, "editcap", "wireshark-common")
	dir := t.TempDir()
	src := filepath.Join(dir, "src.pcap")
	os.WriteFile(src, write(t, "pcap", []Interface{{LinkType: 1}}), 0o644)
	for _, c := range []struct{ format, name string }{{"pcap", "libpcap"}, {"pcapng", "pcapng"}} {
		dst := filepath.Join(dir, c.format)
		if out, err := exec.Command(editcap, "-F", c.name, src, dst).CombinedOutput(); err != nil {
			t.Fatalf("editcap -F %s: %v\n%s", c.name, err, out)
		}
		b, _ := os.ReadFile(dst)
		got, _ := readBack(t, b)
		if len(got) != len(pkts) {
			t.Fatalf("%s: %d packets", c.format, len(got))
		}
		for i, w := range pkts {
			g := got[i]
			// libpcap is microseconds: the nanoseconds are cut.
			wt := w.t
			if c.format == "pcap" {
				wt = w.t / 1000 * 1000
			}
			if g.t != wt || g.orig != w.orig || !bytes.Equal(g.data, w.data) {
				t.Errorf("%s packet %d: t=%d orig=%d, want t=%d orig=%d", c.format, i, g.t, g.orig, wt, w.orig)
			}
		}
	}
}

func TestReaderErrorsNameTheByte(t *testing.T) {
	b := write(t, "pcap", []Interface{{LinkType: 1}})
	ng := write(t, "pcapng", []Interface{{LinkType: 1}})
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"garbage", []byte("GET / HTTP/1.1\r\n\r\n........"), "not a pcap or pcapng file"},
		{"truncated header", b[:20], "truncated"},
		{"truncated record", b[:len(b)-1], "packet 3 at byte"},
		{"truncated pcapng", ng[:len(ng)-2], "truncated"},
	}
	for _, c := range cases {
		r, err := NewReader(bytes.NewReader(c.b))
		for err == nil {
			_, err = r.Next()
		}
		if errors.Is(err, io.EOF) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

// TestPCAPBytes: the classic file, byte for byte, as it was before pcapgo
// wrote it: little-endian nanosecond magic, version 2.4, the snap length and
// link type; times before 1970 and after 2106 clamped, data cut to the snap
// length with the original length kept.
func TestPCAPBytes(t *testing.T) {
	var b bytes.Buffer
	w, err := NewPCAP(&b, 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		ts   int64
		orig uint32
		data []byte
	}{
		{1_767_225_600_123_456_789, 3, []byte{1, 2, 3}},
		{-5, 7, []byte{9, 9, 9, 9, 9, 9}},
		{math.MaxInt64, 2, []byte{7}},
	} {
		if err := w.WritePacket(p.ts, p.orig, p.data); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	le := binary.LittleEndian
	want := le.AppendUint32(nil, 0xa1b23c4d)
	want = le.AppendUint16(want, 2)
	want = le.AppendUint16(want, 4)
	want = append(want, make([]byte, 8)...)
	want = le.AppendUint32(want, 4)
	want = le.AppendUint32(want, 1)
	rec := func(sec, nsec, capLen, orig uint32, data ...byte) {
		for _, v := range []uint32{sec, nsec, capLen, orig} {
			want = le.AppendUint32(want, v)
		}
		want = append(want, data...)
	}
	rec(1_767_225_600, 123_456_789, 3, 3, 1, 2, 3)
	rec(0, 0, 4, 7, 9, 9, 9, 9)
	rec(0xffffffff, 999_999_999, 1, 2, 7)
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("pcap bytes\n% x\nwant\n% x", b.Bytes(), want)
	}
}

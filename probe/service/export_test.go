package service

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"github.com/presscap/presscap/ringfs"
)

// exportFrame is a 100-byte Ethernet/IPv4/UDP frame, with an 802.1Q tag
// (VLAN vid) when vid > 0; its last byte is id.
func exportFrame(vid uint16, id byte) []byte {
	f := []byte{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2}
	if vid > 0 {
		f = binary.BigEndian.AppendUint16(f, 0x8100)
		f = binary.BigEndian.AppendUint16(f, vid)
	}
	f = binary.BigEndian.AppendUint16(f, 0x0800)
	ip := make([]byte, 20+8)
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	binary.BigEndian.PutUint16(ip[20:], 5000)
	binary.BigEndian.PutUint16(ip[22:], 6000)
	f = append(f, ip...)
	f = append(f, make([]byte, 100-len(f))...)
	f[99] = id
	return f
}

// TestExportFilterLiveMeaningOnSlicedPackets: a ring rule keeps only 100
// bytes of each packet. An export filter must judge len/less/greater on the
// packet's length as `tcpdump -i` saw it on the link (the original length,
// less the outer VLAN tag the kernel had taken out), and `ip` must match a
// tagged IPv4 frame as it does live. Judging the stored 100 bytes, or the
// file meaning of the expression, selects other packets.
func TestExportFilterLiveMeaningOnSlicedPackets(t *testing.T) {
	ring, err := ringfs.Create(filepath.Join(t.TempDir(), "ring"), ringfs.Options{Size: ringfs.MinSize, Buffered: true, FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ring.Close() })
	link, err := ring.AddLink(ringfs.Link{Name: "eth0", LinkType: 1, SnapLen: 100})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	// Wire lengths as tcpdump -i sees them: A 1000, B 100, C 996, D 496, E 499.
	recs := []struct {
		id   byte
		vid  uint16
		orig uint32
	}{{'A', 0, 1000}, {'B', 0, 100}, {'C', 10, 1000}, {'D', 10, 500}, {'E', 0, 499}}
	origOf := map[byte]uint32{}
	for i, r := range recs {
		origOf[r.id] = r.orig
		rec := ringfs.Record{Time: base.Add(time.Duration(i) * time.Millisecond).UnixNano(), Link: link,
			OrigLen: r.orig, Data: exportFrame(r.vid, r.id)}
		if err := ring.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := ring.Flush(); err != nil {
		t.Fatal(err)
	}

	cases := []struct{ name, filter, want string }{
		{"greater", "greater 498", "ACE"},           // stored length: none; file meaning: ACDE
		{"ipless", "ip and less 600", "BDE"},        // stored length: all; file meaning: BE
		{"vlanbig", "vlan 10 and greater 900", "C"}, // stored length: none
		{"len", "len = 496", "D"},
		{"all", "", "ABCDE"},
	}
	var specs []ExportSpec
	for _, c := range cases {
		specs = append(specs, ExportSpec{Name: c.name, Filter: c.filter})
	}
	w := &Window{ID: 1, Presses: []PressInfo{{Time: base, Synced: true}}, From: base.Add(-time.Second), To: base.Add(time.Second)}
	dir := t.TempDir()
	man, err := Export(context.Background(), ring, w, specs, "probe", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Files) != len(cases) {
		t.Fatalf("manifest lists %d files, want %d", len(man.Files), len(cases))
	}
	for i, c := range cases {
		path := filepath.Join(dir, man.Files[i].File)
		var got []byte
		for _, p := range readPCAP(t, path) {
			id := p.data[len(p.data)-1]
			got = append(got, id)
			if p.origLen != origOf[id] || len(p.data) != 100 {
				t.Errorf("%s: packet %c stored as %d of %d bytes, want 100 of %d", c.filter, id, len(p.data), p.origLen, origOf[id])
			}
		}
		if string(got) != c.want {
			t.Errorf("export %q: packets %q, want %q", c.filter, got, c.want)
		}
		if n := validate(t, path); n != len(c.want) {
			t.Errorf("%s: tshark reads %d packets, want %d", path, n, len(c.want))
		}
		if man.Files[i].Packets != uint64(len(c.want)) {
			t.Errorf("manifest: %s has %d packets, want %d", c.name, man.Files[i].Packets, len(c.want))
		}
	}
}

package export

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/presscap/presscap/probe/internal/filter"
	"github.com/presscap/presscap/probe/internal/pcapfile"
	"github.com/presscap/presscap/ringfs"
)

// TestCutterFilterMeaning: the cut's filter means what its caller says:
// tcpdump -r's meaning on the stored frames (filter.Offline, probe
// extract) or tcpdump -i's on the link (filter.Live, the service), where
// the outer VLAN tag is not in the frame. len, less and greater judge a
// sliced packet by its length on the wire; no filter takes everything; a
// filter that does not compile and a link the ring lacks are setup errors
// naming the field; packets of a link added after the cut was made are
// counted, not written.
func TestCutterFilterMeaning(t *testing.T) {
	ring, err := ringfs.Create(filepath.Join(t.TempDir(), "ring"), ringfs.Options{Size: ringfs.MinSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ring.Close() })
	eth0, err := ring.AddLink(ringfs.Link{Name: "eth0", LinkType: 1, SnapLen: 2000})
	if err != nil {
		t.Fatal(err)
	}
	// Ethernet + IPv4 + UDP 1234 -> 53.
	udp := func(port byte) []byte {
		return []byte{
			0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00,
			0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
			0x04, 0xd2, 0, port, 0, 8, 0, 0,
		}
	}
	vlan := append([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x81, 0x00, 0x00, 10, 0x88, 0xb5}, make([]byte, 46)...)
	recs := []struct {
		data    []byte
		origLen int
	}{{udp(53), 42}, {udp(54), 42}, {udp(53), 1000}, {vlan, len(vlan)}}
	for i, r := range recs {
		if err := ring.Append(ringfs.Record{Time: int64(i + 1), Link: eth0, OrigLen: uint32(r.origLen), Data: r.data}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ring.Flush(); err != nil {
		t.Fatal(err)
	}
	// cut returns the times (1..4) of the records the filter took.
	cut := func(expr string, meaning filter.Mode) []int64 {
		t.Helper()
		c, err := NewCutter(ring.Links(), []Spec{{Name: "x", Filter: expr}}, meaning)
		if err != nil {
			t.Fatalf("%q: %v", expr, err)
		}
		var buf bytes.Buffer
		if err := c.Open(0, &buf, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(t.Context(), ring, 0, 100, &ringfs.Pos{}, true, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		rd, err := pcapfile.NewReader(&buf)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for {
			p, err := rd.Next()
			if err != nil {
				break
			}
			got = append(got, p.Time)
		}
		if c.Outs[0].Packets != uint64(len(got)) {
			t.Errorf("%q: counted %d packets, the file holds %d", expr, c.Outs[0].Packets, len(got))
		}
		return got
	}
	for _, tc := range []struct {
		expr    string
		meaning filter.Mode
		want    []int64
	}{
		{"", filter.Offline, []int64{1, 2, 3, 4}},
		{"", filter.Live, []int64{1, 2, 3, 4}},
		{"udp dst port 53", filter.Offline, []int64{1, 3}},
		{"greater 100", filter.Offline, []int64{3}},
		{"ether proto 0x88b5", filter.Offline, nil},
		{"ether proto 0x88b5", filter.Live, []int64{4}},
		{"vlan 10", filter.Offline, []int64{4}},
		{"vlan 10", filter.Live, []int64{4}},
	} {
		if got := cut(tc.expr, tc.meaning); !slices.Equal(got, tc.want) {
			t.Errorf("%q with meaning %v: took %v, want %v", tc.expr, tc.meaning, got, tc.want)
		}
	}

	var se *SetupError
	if _, err := NewCutter(ring.Links(), []Spec{{Name: "x", Filter: "host 1.2.3.4 and"}}, filter.Offline); !errors.As(err, &se) || se.Field != "filter" {
		t.Errorf("bad filter: %v, want a setup error of the filter", err)
	}
	_, err = NewCutter(ring.Links(), []Spec{{Name: "x", Link: "eth9"}}, filter.Offline)
	if !errors.As(err, &se) || se.Field != "link" || !strings.Contains(err.Error(), `"eth9"`) || !strings.Contains(err.Error(), "eth0") {
		t.Errorf("missing link: %v, want a setup error of the link naming eth9 and the ring's eth0", err)
	}
	if _, err := NewCutter(nil, []Spec{{Name: "x"}}, filter.Offline); err == nil || !strings.Contains(err.Error(), "no links yet") {
		t.Errorf("ring without links: %v", err)
	}

	c, err := NewCutter(ring.Links(), []Spec{{Name: "x"}}, filter.Offline)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(0, new(bytes.Buffer), ""); err != nil {
		t.Fatal(err)
	}
	eth1, err := ring.AddLink(ringfs.Link{Name: "eth1", LinkType: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Append(ringfs.Record{Time: 5, Link: eth1, OrigLen: 42, Data: udp(53)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(t.Context(), ring, 0, 100, &ringfs.Pos{}, true, nil); err != nil {
		t.Fatal(err)
	}
	if c.Unknown != 1 || c.Outs[0].Packets != 4 {
		t.Errorf("with a link added after the cut was made: %d unknown, %d written; want 1 and 4", c.Unknown, c.Outs[0].Packets)
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/probe/internal/pcapfile"
	"github.com/presscap/presscap/ringfs"
)

// writeCapture writes ps to path in format, packet i on interface
// ifaceOf(i).
func writeCapture(t *testing.T, path, format string, ifaces []pcapfile.Interface, ps []testPacket, ifaceOf func(i int) int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcapfile.NewWriter(f, format, ifaces, "")
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range ps {
		if err := w.WritePacket(ifaceOf(i), p.t, p.orig, p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// ringState is what an import may change: the packets and the links.
func ringState(t *testing.T, dir string) (uint64, []ringfs.Link) {
	t.Helper()
	r, err := ringfs.Open(dir, ringfs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	in, err := r.Info()
	if err != nil {
		t.Fatal(err)
	}
	return in.Packets, in.Links
}

// TestRingImportAllOrNothing: an import whose trouble shows only late (a
// link type clash in the last file or on an interface first used late, a
// packet too large for the ring's blocks, a bad interface name) adds
// nothing: no packet and no link. A link type clash in the second file
// used to leave the first file's packets behind.
func TestRingImportAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	ring := filepath.Join(dir, "ring")
	eth := pcapfile.Interface{Name: "eth0", LinkType: 1, SnapLen: 65535}
	ps := makeFrames(5, 50, t0, time.Second)
	first := filepath.Join(dir, "first.pcapng")
	writeCapture(t, first, "pcapng", []pcapfile.Interface{eth}, ps, func(int) int { return 0 })
	mustRun(t, "ring", "import", "-ring", ring, "-size", "64MiB", first)
	wantPackets, wantLinks := ringState(t, ring)

	file := func(name string, ifaces []pcapfile.Interface, ifaceOf func(int) int) string {
		p := filepath.Join(dir, name)
		writeCapture(t, p, "pcapng", ifaces, makeFrames(7, 40, t0+100e9, time.Second), ifaceOf)
		return p
	}
	lan := pcapfile.Interface{Name: "lan", LinkType: 1}
	raw := pcapfile.Interface{Name: "eth0", LinkType: 101}
	goodLan := file("lan.pcapng", []pcapfile.Interface{lan}, func(int) int { return 0 })
	big := makeFrames(8, 30, t0+200e9, time.Second)
	big[20].data = append(big[20].data, make([]byte, 2<<20)...)
	bigFile := filepath.Join(dir, "big.pcapng")
	writeCapture(t, bigFile, "pcapng", []pcapfile.Interface{{Name: "lan", LinkType: 1, SnapLen: 4 << 20}}, big, func(int) int { return 0 })
	pathName := file("path.pcapng", []pcapfile.Interface{{Name: "../../etc", LinkType: 1}}, func(int) int { return 0 })

	cases := []struct {
		name  string
		files []string
		want  string
	}{
		{"clash with the ring in the last file", []string{goodLan, file("raw.pcapng", []pcapfile.Interface{raw}, func(int) int { return 0 })},
			`link "eth0" has link type 1 in the ring but 101`},
		{"clash between two files", []string{goodLan, file("lan-raw.pcapng", []pcapfile.Interface{{Name: "lan", LinkType: 101}}, func(int) int { return 0 })},
			`link "lan" has link type 101, but 1 in`},
		{"clash on an interface used late", []string{file("late.pcapng", []pcapfile.Interface{lan, {Name: "lan", LinkType: 105}}, func(i int) int {
			if i < 30 {
				return 0
			}
			return 1
		})}, `link "lan" has link type 105, but 1 in`},
		{"packet larger than a block", []string{goodLan, bigFile}, "packet 21: "},
		{"interface name that is a path", []string{goodLan, pathName}, "if_name at byte"},
	}
	for _, c := range cases {
		_, _, err := probeRun(t, append([]string{"ring", "import", "-ring", ring}, c.files...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
		packets, links := ringState(t, ring)
		if packets != wantPackets || len(links) != len(wantLinks) {
			t.Errorf("%s: the ring holds %d packets and links %v after the failed import, want %d and %v", c.name, packets, links, wantPackets, wantLinks)
		}
	}
	for _, l := range []string{"a/b", strings.Repeat("x", 10<<10), ""} {
		if _, _, err := probeRun(t, "ring", "import", "-ring", ring, "-link", l, goodLan); err == nil || !strings.Contains(err.Error(), "-link") {
			t.Errorf("-link %.20q: %v, want an error naming -link", l, err)
		}
	}
	// A new ring: the clash refuses the import before the ring is filled.
	fresh := filepath.Join(dir, "fresh")
	if _, _, err := probeRun(t, "ring", "import", "-ring", fresh, "-size", "64MiB", first, file("raw2.pcapng", []pcapfile.Interface{raw}, func(int) int { return 0 })); err == nil {
		t.Error("import into a new ring with a clash succeeded")
	}
	if _, err := os.Stat(fresh); err == nil {
		if packets, links := ringState(t, fresh); packets != 0 || len(links) != 0 {
			t.Errorf("new ring after a failed import: %d packets, links %v", packets, links)
		}
	}
	// And the good files still import.
	mustRun(t, "ring", "import", "-ring", ring, goodLan)
	if packets, _ := ringState(t, ring); packets != wantPackets+40 {
		t.Errorf("after the good import: %d packets, want %d", packets, wantPackets+40)
	}
}

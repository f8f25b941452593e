package ringimport

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/presscap/presscap/probe/internal/pcapfile"
	"github.com/presscap/presscap/ringfs"
)

// writeFile writes n packets of size bytes on one interface.
func writeFile(t *testing.T, name, format string, ifc pcapfile.Interface, n, size int) string {
	t.Helper()
	var b bytes.Buffer
	w, err := pcapfile.NewWriter(&b, format, []pcapfile.Interface{ifc}, "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := w.WritePacket(0, int64(1e18)+int64(i)*1e6, uint32(size), make([]byte, size)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestImport: the files' packets land in the ring under their links
// (the fallback for a nameless interface), with a durable report every
// SyncEvery packets.
func TestImport(t *testing.T) {
	a := writeFile(t, "a.pcap", "pcap", pcapfile.Interface{LinkType: 1}, 5, 60)
	b := writeFile(t, "b.pcapng", "pcapng", pcapfile.Interface{Name: "lan", LinkType: 1}, 3, 100)
	files := []string{a, b}
	plan, err := NewPlan(files, "imported")
	if err != nil {
		t.Fatal(err)
	}
	r, err := ringfs.Create(filepath.Join(t.TempDir(), "ring"), ringfs.Options{Size: ringfs.MinSize, Buffered: true, FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := plan.Fits(r); err != nil {
		t.Fatalf("Fits: %v", err)
	}
	var durable []int
	n, err := Import(context.Background(), r, files, Options{Fallback: "imported", SyncEvery: 3, Durable: func(n int) { durable = append(durable, n) }})
	if err != nil || n != 8 {
		t.Fatalf("Import = %d, %v; want 8 packets", n, err)
	}
	if len(durable) != 2 || durable[0] != 3 || durable[1] != 6 {
		t.Errorf("durable reports %v, want [3 6]", durable)
	}
	var names []string
	for _, l := range r.Links() {
		names = append(names, l.Name)
	}
	if strings.Join(names, ",") != "imported,lan" {
		t.Errorf("links %v, want imported,lan", names)
	}
}

// TestPlanRefusesBeforeImport: a link name with two link types (between
// files, or against the ring) and a bad fallback name are refused by the
// plan, before anything is written; a cancelled import stops.
func TestPlanRefusesBeforeImport(t *testing.T) {
	eth := writeFile(t, "eth.pcap", "pcap", pcapfile.Interface{LinkType: 1}, 1, 60)
	raw := writeFile(t, "raw.pcap", "pcap", pcapfile.Interface{LinkType: 101}, 1, 60)
	if _, err := NewPlan([]string{eth, raw}, "x"); err == nil || !strings.Contains(err.Error(), `link "x" has link type 101, but 1`) {
		t.Errorf("two link types under one name: %v", err)
	}
	if _, err := NewPlan([]string{eth}, "a/b"); err == nil || !strings.Contains(err.Error(), "link name for unnamed interfaces") {
		t.Errorf("bad fallback: %v", err)
	}
	r, err := ringfs.Create(filepath.Join(t.TempDir(), "ring"), ringfs.Options{Size: ringfs.MinSize, Buffered: true, FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.AddLink(ringfs.Link{Name: "x", LinkType: 101}); err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan([]string{eth}, "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Fits(r); err == nil || !strings.Contains(err.Error(), "link type 101 in the ring but 1 in the file") {
		t.Errorf("Fits with a clashing ring link: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err := Import(ctx, r, []string{eth}, Options{Fallback: "y"}); n != 0 || err != context.Canceled {
		t.Errorf("cancelled Import = %d, %v", n, err)
	}
}

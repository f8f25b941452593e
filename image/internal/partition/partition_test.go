package partition

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/presscap/presscap/internal/testing/testtool"
)

const testDisk = 2 << 30

func writeDisk(t *testing.T, l Layout) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(l.TotalSectors) * SectorSize); err != nil {
		t.Fatal(err)
	}
	if err := l.Write(f); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSignatureAndGUIDs(t *testing.T) {
	// FNV-1a-32 computed from the algorithm's constants.
	h := uint32(2166136261)
	for _, c := range []byte("presscap") {
		h ^= uint32(c)
		h *= 16777619
	}
	if got := Signature("presscap"); got != h {
		t.Fatalf("Signature = %08x, want %08x", got, h)
	}
	if got, want := PartitionGUID(0xdeadbeef, 3), "60c24cc1-f3f9-427a-8199-deadbeef0003"; got != want {
		t.Errorf("PartitionGUID = %s, want %s", got, want)
	}
	if got, want := RootCmdline(0xdeadbeef), "root=PARTUUID=60c24cc1-f3f9-427a-8199-deadbeef0001/PARTNROFF=1"; got != want {
		t.Errorf("RootCmdline = %s, want %s", got, want)
	}
	b, err := GUIDBytes("60c24cc1-f3f9-427a-8199-deadbeef0001")
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0xc1, 0x4c, 0xc2, 0x60, 0xf9, 0xf3, 0x7a, 0x42, 0x81, 0x99, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01}
	if !bytes.Equal(b, want) {
		t.Errorf("GUIDBytes = % x, want % x", b, want)
	}
	if _, err := GUIDBytes("60c24cc1-f3f9-427a-8199-deadbeef00zz"); err == nil {
		t.Error("bad hex accepted")
	}
}

func TestMBRBytes(t *testing.T) {
	l, err := NewLayout(0x11223344, testDisk)
	if err != nil {
		t.Fatal(err)
	}
	m := l.MBR()
	want := map[int][]byte{
		440: {0x44, 0x33, 0x22, 0x11, 0, 0},
		446: {0x80, 0xFE, 0xFF, 0xFF, 0x0C, 0xFE, 0xFF, 0xFF, 0x00, 0x20, 0, 0, 0x00, 0x20, 0x03, 0},
		462: {0x00, 0xFE, 0xFF, 0xFF, 0xEE, 0xFE, 0xFF, 0xFF, 0x01, 0, 0, 0, 0xFF, 0x1F, 0, 0},
		478: make([]byte, 32),
		510: {0x55, 0xAA},
	}
	for off, w := range want {
		if got := m[off : off+len(w)]; !bytes.Equal(got, w) {
			t.Errorf("MBR bytes %d..%d = % x, want % x", off, off+len(w)-1, got, w)
		}
	}
}

func TestSfdiskReadsOurTable(t *testing.T) {
	sfdisk := testtool.Path(t, "sfdisk", "fdisk")
	sig := Signature("presscap")
	l, err := NewLayout(sig, testDisk)
	if err != nil {
		t.Fatal(err)
	}
	img := writeDisk(t, l)
	out, err := exec.Command(sfdisk, "--json", img).CombinedOutput()
	if err != nil {
		t.Fatalf("sfdisk --json: %v\n%s", err, out)
	}
	var dump struct {
		PartitionTable struct {
			Label      string `json:"label"`
			ID         string `json:"id"`
			FirstLBA   uint64 `json:"firstlba"`
			LastLBA    uint64 `json:"lastlba"`
			Partitions []struct {
				Start uint64 `json:"start"`
				Size  uint64 `json:"size"`
				Type  string `json:"type"`
				UUID  string `json:"uuid"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &dump); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	pt := dump.PartitionTable
	if pt.Label != "gpt" || !strings.EqualFold(pt.ID, DiskGUID(sig)) {
		t.Errorf("label %q id %q, want gpt %s", pt.Label, pt.ID, DiskGUID(sig))
	}
	total := uint64(testDisk / SectorSize)
	if pt.FirstLBA != 34 || pt.LastLBA != total-34 {
		t.Errorf("usable LBAs %d..%d, want 34..%d", pt.FirstLBA, pt.LastLBA, total-34)
	}
	want := []struct {
		start, size uint64
		typ         string
	}{
		{8192, 204800, TypeEFISystem},
		{212992, 1024000, TypeRootARM64},
		{1236992, 1024000, TypeLinuxData},
		{2260992, total - 34 - 2260992 + 1, TypeLinuxData},
	}
	if len(pt.Partitions) != 4 {
		t.Fatalf("sfdisk sees %d partitions, want 4: %s", len(pt.Partitions), out)
	}
	for i, w := range want {
		p := pt.Partitions[i]
		if p.Start != w.start || p.Size != w.size || !strings.EqualFold(p.Type, w.typ) || !strings.EqualFold(p.UUID, PartitionGUID(sig, i+1)) {
			t.Errorf("partition %d: %+v, want start %d size %d type %s uuid %s", i+1, p, w.start, w.size, w.typ, PartitionGUID(sig, i+1))
		}
	}

	// Our own reader agrees and checks both copies.
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := Read(f, testDisk)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Signature != sig || len(tab.Partitions) != 4 || tab.LastLBA != total-1 {
		t.Errorf("Read: %+v", tab)
	}
	for i, p := range tab.Partitions {
		if p.Start != l.Partitions[i].Start || p.End != l.Partitions[i].End || !strings.EqualFold(p.GUID, l.Partitions[i].GUID) {
			t.Errorf("Read partition %d = %+v, want %+v", i+1, p, l.Partitions[i])
		}
	}
}

// flipped reads like r except that one byte is inverted.
type flipped struct {
	r   io.ReaderAt
	off int64
}

func (f flipped) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.r.ReadAt(p, off)
	if f.off >= off && f.off < off+int64(n) {
		p[f.off-off] ^= 0xFF
	}
	return n, err
}

func TestReadRejectsCorruption(t *testing.T) {
	l, err := NewLayout(1, testDisk)
	if err != nil {
		t.Fatal(err)
	}
	img := writeDisk(t, l)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tt := range []struct {
		name string
		off  int64
		want string
	}{
		{"primary header", 512 + 60, "primary GPT: LBA 1: header CRC"},
		{"entry array", 1024 + 40, "entry array CRC"},
		{"backup header", testDisk - 512 + 60, "backup GPT"},
		{"boot signature", 510, "byte 510"},
	} {
		_, err := Read(flipped{f, tt.off}, testDisk)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s corrupted: err = %v, want %q", tt.name, err, tt.want)
		}
	}
	if _, err := Read(f, testDisk); err != nil {
		t.Errorf("uncorrupted: %v", err)
	}
	if _, err := NewLayout(1, 1<<30); err == nil {
		t.Error("a 1 GiB disk was accepted")
	}
}

// TestForArch: the x86-64 image's root A carries the x86-64 root type, as
// fdisk's table of known types names it.
func TestForArch(t *testing.T) {
	sfdisk := testtool.Path(t, "sfdisk", "fdisk")
	l, err := NewLayout(Signature("presscap-x86"), testDisk)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ arch, typ, name string }{
		{"amd64", TypeRootAMD64, "Linux root (x86-64)"},
		{"arm64", TypeRootARM64, "Linux root (ARM-64)"},
	} {
		la, err := l.ForArch(tt.arch)
		if err != nil {
			t.Fatal(err)
		}
		img := writeDisk(t, la)
		out, err := exec.Command(sfdisk, "--list", "-o", "Device,Type-UUID,Type", img).CombinedOutput()
		if err != nil {
			t.Fatalf("sfdisk --list: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), img+"2 "+tt.typ+" "+tt.name) {
			t.Errorf("%s: sfdisk does not see root A as %s %s:\n%s", tt.arch, tt.typ, tt.name, out)
		}
	}
	if _, err := l.ForArch("riscv64"); err == nil || !strings.Contains(err.Error(), "riscv64") {
		t.Errorf("ForArch(riscv64) = %v, want an error naming it", err)
	}
}

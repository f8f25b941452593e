// Package partition writes and reads the partition table of a gokrazy disk:
// a GPT with four partitions plus a hybrid MBR whose first entry makes the
// boot FAT visible to the Raspberry Pi's firmware, which reads only MBRs.
//
// The layout, GUIDs and signature follow what gokrazy's packer writes and
// what gokrazy's init expects when it looks for root=PARTUUID=.../PARTNROFF=n.
package partition

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io"
	"strings"
)

// SectorSize is the logical sector size the layout is computed for.
const SectorSize = 512

// Partition numbers (1-based), as gokrazy names them.
const (
	Boot  = 1
	RootA = 2
	RootB = 3
	Perm  = 4
)

// Fixed starts and sizes in sectors (design §6).
const (
	BootStart   = 8192
	BootSectors = 100 << 20 / SectorSize
	RootStart   = 212992
	RootSectors = 500 << 20 / SectorSize
	RootBStart  = 1236992
	PermStart   = 2260992

	// gptSectors is the size of one partition entry array (128 × 128 bytes).
	gptEntries     = 128
	gptEntrySize   = 128
	gptArraySector = gptEntries * gptEntrySize / SectorSize // 32
	// FirstUsable is the first LBA after the primary GPT.
	FirstUsable = 2 + gptArraySector
	// MinPermSectors keeps /perm big enough for an ext4 journal.
	MinPermSectors = 32 << 20 / SectorSize
)

// GPT partition type GUIDs (canonical text form).
const (
	TypeEFISystem = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	TypeRootARM64 = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"
	TypeRootAMD64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
	TypeLinuxData = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
)

// guidPrefix is gokrazy's fixed prefix of disk and partition GUIDs; the last
// group is the disk signature in hex followed by the partition number.
const guidPrefix = "60c24cc1-f3f9-427a-8199-"

// Signature returns the stable 32-bit disk signature for a hostname
// (FNV-1a-32, as gok does), so an update never changes the PARTUUIDs.
func Signature(hostname string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(hostname))
	return h.Sum32()
}

// DiskGUID returns the disk GUID for a signature.
func DiskGUID(sig uint32) string { return PartitionGUID(sig, 0) }

// PartitionGUID returns partition n's GUID (n = 0 is the disk itself).
func PartitionGUID(sig uint32, n int) string {
	return fmt.Sprintf("%s%08x%04x", guidPrefix, sig, n)
}

// RootCmdline returns the root= argument that selects the first root
// partition; an update rewrites PARTNROFF=1 to PARTNROFF=2 and back. The GUID
// is in lower case as gok writes it (the kernel and gokrazy's init match
// either case), so our boot partition compares byte for byte with gok's.
func RootCmdline(sig uint32) string {
	return "root=PARTUUID=" + PartitionGUID(sig, Boot) + "/PARTNROFF=1"
}

// Entry is one partition.
type Entry struct {
	Number int
	Type   string // GPT type GUID, canonical text
	GUID   string // unique GUID, canonical text
	Start  uint64 // first LBA
	End    uint64 // last LBA, inclusive
}

// Sectors returns the partition's size in sectors.
func (e Entry) Sectors() uint64 { return e.End - e.Start + 1 }

// Offset returns the partition's byte offset on the disk.
func (e Entry) Offset() int64 { return int64(e.Start) * SectorSize }

// Size returns the partition's size in bytes.
func (e Entry) Size() int64 { return int64(e.Sectors()) * SectorSize }

// Layout is the whole partition table of one disk.
type Layout struct {
	Signature    uint32
	TotalSectors uint64
	Partitions   [4]Entry
}

// NewLayout computes the gokrazy layout for a disk of totalBytes.
func NewLayout(sig uint32, totalBytes int64) (Layout, error) {
	if totalBytes%SectorSize != 0 {
		return Layout{}, fmt.Errorf("disk size %d is not a multiple of %d bytes", totalBytes, SectorSize)
	}
	total := uint64(totalBytes / SectorSize)
	lastUsable := total - FirstUsable // total − 34: the backup GPT follows
	if total < PermStart+MinPermSectors+FirstUsable {
		return Layout{}, fmt.Errorf("disk size %d bytes is too small: need at least %d bytes for boot, two roots and a %d MiB /perm",
			totalBytes, int64(PermStart+MinPermSectors+FirstUsable)*SectorSize, MinPermSectors*SectorSize>>20)
	}
	l := Layout{Signature: sig, TotalSectors: total}
	l.Partitions = [4]Entry{
		{Boot, TypeEFISystem, PartitionGUID(sig, 1), BootStart, BootStart + BootSectors - 1},
		{RootA, TypeRootARM64, PartitionGUID(sig, 2), RootStart, RootStart + RootSectors - 1},
		{RootB, TypeLinuxData, PartitionGUID(sig, 3), RootBStart, RootBStart + RootSectors - 1},
		{Perm, TypeLinuxData, PartitionGUID(sig, 4), PermStart, lastUsable},
	}
	return l, nil
}

// ForArch returns l with root A typed as the Linux root partition of goarch
// (the Discoverable Partitions Specification's type; gokrazy finds its root
// by PARTUUID, firmware and tools by type). Root B stays "Linux data" until
// an update writes it, as gok leaves it.
func (l Layout) ForArch(goarch string) (Layout, error) {
	switch goarch {
	case "arm64":
		l.Partitions[RootA-1].Type = TypeRootARM64
	case "amd64":
		l.Partitions[RootA-1].Type = TypeRootAMD64
	default:
		return Layout{}, fmt.Errorf("no root partition type for GOARCH %s", goarch)
	}
	return l, nil
}

// Partition returns partition n (1-based).
func (l Layout) Partition(n int) Entry { return l.Partitions[n-1] }

// MBR returns the 512-byte hybrid MBR: entry 1 is the boot FAT (active,
// type 0x0C) for the Raspberry Pi firmware, entry 2 the 0xEE protective
// entry covering the GPT, so UEFI firmware still takes the disk as GPT.
func (l Layout) MBR() []byte {
	b := make([]byte, SectorSize)
	binary.LittleEndian.PutUint32(b[440:], l.Signature)
	boot := l.Partition(Boot)
	putMBREntry(b[446:], 0x80, 0x0C, uint32(boot.Start), uint32(boot.Sectors()))
	putMBREntry(b[446+16:], 0x00, 0xEE, 1, BootStart-1)
	b[510], b[511] = 0x55, 0xAA
	return b
}

// DataDiskStart is where DataDiskMBR's one partition starts (1 MiB, the
// alignment every partitioning tool uses).
const DataDiskStart = 2048

// DataDiskMBR returns the MBR of a data disk of totalSectors: one Linux
// partition (type 0x83) from DataDiskStart to the end, no boot code. The
// VM edition's ring disk is laid out like this, as fdisk would.
func DataDiskMBR(totalSectors uint64, signature uint32) ([]byte, error) {
	if totalSectors <= DataDiskStart || totalSectors > 1<<32 {
		return nil, fmt.Errorf("data disk of %d sectors: want more than %d and at most 2^32 (2 TiB)", totalSectors, DataDiskStart)
	}
	b := make([]byte, SectorSize)
	binary.LittleEndian.PutUint32(b[440:], signature)
	putMBREntry(b[446:], 0x00, 0x83, DataDiskStart, uint32(totalSectors-DataDiskStart))
	b[510], b[511] = 0x55, 0xAA
	return b, nil
}

func putMBREntry(b []byte, status, typ byte, lba, sectors uint32) {
	b[0] = status
	// CHS addressing is meaningless on these disk sizes: FE FF FF says
	// "use the LBA fields", as the Pi firmware and Linux do.
	copy(b[1:4], []byte{0xFE, 0xFF, 0xFF})
	b[4] = typ
	copy(b[5:8], []byte{0xFE, 0xFF, 0xFF})
	binary.LittleEndian.PutUint32(b[8:], lba)
	binary.LittleEndian.PutUint32(b[12:], sectors)
}

// entryArray returns the 16 KiB GPT partition entry array.
func (l Layout) entryArray() ([]byte, error) {
	b := make([]byte, gptEntries*gptEntrySize)
	for i, p := range l.Partitions {
		e := b[i*gptEntrySize:]
		t, err := GUIDBytes(p.Type)
		if err != nil {
			return nil, fmt.Errorf("partition %d type: %w", p.Number, err)
		}
		g, err := GUIDBytes(p.GUID)
		if err != nil {
			return nil, fmt.Errorf("partition %d GUID: %w", p.Number, err)
		}
		copy(e[0:16], t)
		copy(e[16:32], g)
		binary.LittleEndian.PutUint64(e[32:], p.Start)
		binary.LittleEndian.PutUint64(e[40:], p.End)
		// attributes (48..55) and name (56..127) stay zero, as gok leaves them.
	}
	return b, nil
}

func (l Layout) header(current, backup, entriesLBA uint64, arrayCRC uint32) ([]byte, error) {
	dg, err := GUIDBytes(DiskGUID(l.Signature))
	if err != nil {
		return nil, err
	}
	h := make([]byte, SectorSize)
	copy(h[0:8], "EFI PART")
	binary.LittleEndian.PutUint32(h[8:], 0x00010000)
	binary.LittleEndian.PutUint32(h[12:], 92)
	binary.LittleEndian.PutUint64(h[24:], current)
	binary.LittleEndian.PutUint64(h[32:], backup)
	binary.LittleEndian.PutUint64(h[40:], FirstUsable)
	binary.LittleEndian.PutUint64(h[48:], l.TotalSectors-FirstUsable)
	copy(h[56:72], dg)
	binary.LittleEndian.PutUint64(h[72:], entriesLBA)
	binary.LittleEndian.PutUint32(h[80:], gptEntries)
	binary.LittleEndian.PutUint32(h[84:], gptEntrySize)
	binary.LittleEndian.PutUint32(h[88:], arrayCRC)
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
	return h, nil
}

// Write writes the MBR, the primary GPT (LBA 1–33) and the backup GPT (the
// last 33 sectors) to w, which must span TotalSectors.
func (l Layout) Write(w io.WriterAt) error {
	arr, err := l.entryArray()
	if err != nil {
		return err
	}
	arrCRC := crc32.ChecksumIEEE(arr)
	last := l.TotalSectors - 1
	primary, err := l.header(1, last, 2, arrCRC)
	if err != nil {
		return err
	}
	backupArray := last - gptArraySector
	backup, err := l.header(last, 1, backupArray, arrCRC)
	if err != nil {
		return err
	}
	for _, c := range []struct {
		lba uint64
		b   []byte
	}{
		{0, l.MBR()}, {1, primary}, {2, arr}, {backupArray, arr}, {last, backup},
	} {
		if _, err := w.WriteAt(c.b, int64(c.lba)*SectorSize); err != nil {
			return fmt.Errorf("writing partition table at LBA %d: %w", c.lba, err)
		}
	}
	return nil
}

// GUIDBytes encodes a canonical GUID the way GPT stores it: the first three
// groups little-endian, the last two as written.
func GUIDBytes(s string) ([]byte, error) {
	hex := strings.ReplaceAll(s, "-", "")
	if len(hex) != 32 || len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return nil, fmt.Errorf("GUID %q: want 8-4-4-4-12 hex digits", s)
	}
	var raw [16]byte
	for i := range raw {
		var v byte
		if _, err := fmt.Sscanf(hex[2*i:2*i+2], "%02x", &v); err != nil {
			return nil, fmt.Errorf("GUID %q: byte %d: %w", s, i, err)
		}
		raw[i] = v
	}
	b := make([]byte, 16)
	b[0], b[1], b[2], b[3] = raw[3], raw[2], raw[1], raw[0]
	b[4], b[5] = raw[5], raw[4]
	b[6], b[7] = raw[7], raw[6]
	copy(b[8:], raw[8:])
	return b, nil
}

// GUIDString decodes 16 GPT-order bytes into the canonical upper-case form.
func GUIDString(b []byte) string {
	return fmt.Sprintf("%08X-%04X-%04X-%04X-%012X",
		binary.LittleEndian.Uint32(b[0:4]),
		binary.LittleEndian.Uint16(b[4:6]),
		binary.LittleEndian.Uint16(b[6:8]),
		binary.BigEndian.Uint16(b[8:10]),
		b[10:16])
}

// MBREntry is one decoded MBR partition entry.
type MBREntry struct {
	Status   byte
	CHSFirst [3]byte
	Type     byte
	CHSLast  [3]byte
	LBA      uint32
	Sectors  uint32
}

// Table is what Read finds on a disk.
type Table struct {
	Signature  uint32
	MBR        [4]MBREntry
	DiskGUID   string
	LastLBA    uint64 // of the disk, from the primary header's backup LBA
	Partitions []Entry
}

// Read parses and checks the MBR and both GPT headers of a disk image: CRCs,
// signatures and that the backup matches the primary. Errors name the
// offending field and LBA.
func Read(r io.ReaderAt, diskBytes int64) (*Table, error) {
	mbr := make([]byte, SectorSize)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("reading MBR: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return nil, fmt.Errorf("MBR: boot signature at byte 510 is %02x %02x, want 55 aa", mbr[510], mbr[511])
	}
	t := &Table{Signature: binary.LittleEndian.Uint32(mbr[440:])}
	for i := range t.MBR {
		e := mbr[446+16*i:]
		m := &t.MBR[i]
		m.Status, m.Type = e[0], e[4]
		copy(m.CHSFirst[:], e[1:4])
		copy(m.CHSLast[:], e[5:8])
		m.LBA = binary.LittleEndian.Uint32(e[8:])
		m.Sectors = binary.LittleEndian.Uint32(e[12:])
	}
	primary, arr, err := readGPT(r, 1)
	if err != nil {
		return nil, fmt.Errorf("primary GPT: %w", err)
	}
	backupLBA := binary.LittleEndian.Uint64(primary[32:])
	if want := uint64(diskBytes/SectorSize) - 1; backupLBA != want {
		return nil, fmt.Errorf("primary GPT: backup LBA (byte 32) is %d, want the last sector %d", backupLBA, want)
	}
	backup, barr, err := readGPT(r, backupLBA)
	if err != nil {
		return nil, fmt.Errorf("backup GPT: %w", err)
	}
	if !bytes.Equal(arr, barr) {
		return nil, errors.New("backup GPT: partition entries differ from the primary")
	}
	if !bytes.Equal(primary[56:72], backup[56:72]) {
		return nil, errors.New("backup GPT: disk GUID differs from the primary")
	}
	t.DiskGUID = GUIDString(primary[56:72])
	t.LastLBA = backupLBA
	for i := 0; i < gptEntries; i++ {
		e := arr[i*gptEntrySize : (i+1)*gptEntrySize]
		if bytes.Equal(e[0:16], make([]byte, 16)) {
			continue
		}
		t.Partitions = append(t.Partitions, Entry{
			Number: i + 1,
			Type:   GUIDString(e[0:16]),
			GUID:   GUIDString(e[16:32]),
			Start:  binary.LittleEndian.Uint64(e[32:]),
			End:    binary.LittleEndian.Uint64(e[40:]),
		})
	}
	return t, nil
}

func readGPT(r io.ReaderAt, lba uint64) (hdr, arr []byte, err error) {
	hdr = make([]byte, SectorSize)
	if _, err := r.ReadAt(hdr, int64(lba)*SectorSize); err != nil {
		return nil, nil, fmt.Errorf("reading header at LBA %d: %w", lba, err)
	}
	if string(hdr[0:8]) != "EFI PART" {
		return nil, nil, fmt.Errorf("LBA %d: signature %q, want \"EFI PART\"", lba, hdr[0:8])
	}
	size := binary.LittleEndian.Uint32(hdr[12:])
	if size != 92 {
		return nil, nil, fmt.Errorf("LBA %d: header size (byte 12) %d, want 92", lba, size)
	}
	want := binary.LittleEndian.Uint32(hdr[16:])
	c := make([]byte, 92)
	copy(c, hdr[:92])
	binary.LittleEndian.PutUint32(c[16:], 0)
	if got := crc32.ChecksumIEEE(c); got != want {
		return nil, nil, fmt.Errorf("LBA %d: header CRC (byte 16) %08x, computed %08x", lba, want, got)
	}
	if cur := binary.LittleEndian.Uint64(hdr[24:]); cur != lba {
		return nil, nil, fmt.Errorf("LBA %d: current LBA (byte 24) says %d", lba, cur)
	}
	n := binary.LittleEndian.Uint32(hdr[80:])
	es := binary.LittleEndian.Uint32(hdr[84:])
	if n != gptEntries || es != gptEntrySize {
		return nil, nil, fmt.Errorf("LBA %d: %d entries of %d bytes (bytes 80, 84), want %d of %d", lba, n, es, gptEntries, gptEntrySize)
	}
	arr = make([]byte, n*es)
	arrLBA := binary.LittleEndian.Uint64(hdr[72:])
	if _, err := r.ReadAt(arr, int64(arrLBA)*SectorSize); err != nil {
		return nil, nil, fmt.Errorf("reading entries at LBA %d: %w", arrLBA, err)
	}
	if got, want := crc32.ChecksumIEEE(arr), binary.LittleEndian.Uint32(hdr[88:]); got != want {
		return nil, nil, fmt.Errorf("LBA %d: entry array CRC (byte 88) %08x, computed %08x", lba, want, got)
	}
	return hdr, arr, nil
}

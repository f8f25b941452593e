// Package fat writes and reads the FAT16 boot file system of a gokrazy disk.
//
// gokrazy's init does not mount the boot partition to switch root partitions
// after an update: it reads the FAT itself, finds cmdline.txt by its 8.3 name
// and rewrites the bytes in place. Its reader assumes 512-byte sectors, ONE
// FAT (the root directory starts right after it), a fixed root directory and
// files stored in one contiguous run of clusters. The writer here produces
// exactly that, with long file name entries so the firmware, UEFI and Linux
// see the real names.
package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// Fixed geometry (gokrazy's rules).
const (
	SectorSize        = 512
	SectorsPerCluster = 4
	ReservedSectors   = 4
	NumFATs           = 1
	RootEntries       = 512
	ClusterSize       = SectorSize * SectorsPerCluster
	dirEntrySize      = 32
	minClusters       = 4085 // fewer clusters would make it FAT12
	maxClusters       = 65524
	attrDirectory     = 0x10
	attrArchive       = 0x20
	attrLongName      = 0x0F
)

type node struct {
	name     string
	dir      bool
	data     []byte
	children map[string]*node
	// layout results
	short   [11]byte
	cluster uint16
	entries []byte // directory contents (dirs only)
}

// Builder collects files and directories and writes them as a FAT16 file
// system. The zero value is not usable; call NewBuilder.
type Builder struct {
	root *node
}

// NewBuilder returns an empty file system.
func NewBuilder() *Builder {
	return &Builder{root: &node{dir: true, children: map[string]*node{}}}
}

func clean(p string) (string, error) {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" || p == "." {
		return "", errors.New("empty path")
	}
	for _, c := range strings.Split(p, "/") {
		if len(c) > 255 {
			return "", fmt.Errorf("%q: name longer than 255 characters", c)
		}
		if strings.ContainsAny(c, "\\:*?\"<>|") {
			return "", fmt.Errorf("%q: character not allowed in a FAT name", c)
		}
	}
	return p, nil
}

func (b *Builder) mkdirAll(parts []string) (*node, error) {
	n := b.root
	for i, c := range parts {
		key := strings.ToUpper(c)
		child, ok := n.children[key]
		if !ok {
			child = &node{name: c, dir: true, children: map[string]*node{}}
			n.children[key] = child
		} else if !child.dir {
			return nil, fmt.Errorf("fat: %s is a file, not a directory", strings.Join(parts[:i+1], "/"))
		}
		n = child
	}
	return n, nil
}

// AddFile adds a file (and its parent directories). Names are compared
// case-insensitively, as FAT does; adding the same path twice is an error.
func (b *Builder) AddFile(p string, data []byte) error {
	p, err := clean(p)
	if err != nil {
		return fmt.Errorf("fat add: %w", err)
	}
	parts := strings.Split(p, "/")
	dir, err := b.mkdirAll(parts[:len(parts)-1])
	if err != nil {
		return err
	}
	name := parts[len(parts)-1]
	key := strings.ToUpper(name)
	if _, ok := dir.children[key]; ok {
		return fmt.Errorf("fat: %s added twice", p)
	}
	dir.children[key] = &node{name: name, data: data}
	return nil
}

// Geometry is the computed layout of a file system of a given size.
type Geometry struct {
	TotalSectors uint32
	FATSectors   uint32
	Clusters     uint32
	RootSector   uint32 // first sector of the root directory
	DataSector   uint32 // first sector of cluster 2
}

// ComputeGeometry sizes the FAT for totalSectors.
func ComputeGeometry(totalSectors uint32) (Geometry, error) {
	rootSectors := uint32(RootEntries * dirEntrySize / SectorSize)
	var fatSectors uint32 = 1
	for {
		data := int64(totalSectors) - ReservedSectors - int64(fatSectors)*NumFATs - int64(rootSectors)
		if data <= 0 {
			return Geometry{}, fmt.Errorf("fat: %d sectors is too small", totalSectors)
		}
		clusters := uint32(data / SectorsPerCluster)
		need := ((clusters+2)*2 + SectorSize - 1) / SectorSize
		if need <= fatSectors {
			if clusters < minClusters || clusters > maxClusters {
				return Geometry{}, fmt.Errorf("fat: %d sectors give %d clusters; FAT16 needs %d to %d", totalSectors, clusters, minClusters, maxClusters)
			}
			g := Geometry{TotalSectors: totalSectors, FATSectors: fatSectors, Clusters: clusters}
			g.RootSector = ReservedSectors + fatSectors*NumFATs
			g.DataSector = g.RootSector + rootSectors
			return g, nil
		}
		fatSectors = need
	}
}

// Options describe the file system's identity.
type Options struct {
	TotalSectors  uint32    // size of the partition
	HiddenSectors uint32    // partition start LBA
	VolumeID      uint32    // serial number
	ModTime       time.Time // stamped on every entry
}

// Write lays the file system out and writes it to w (offset 0 = boot sector).
// It returns the number of bytes up to the end of the last used cluster:
// the rest of the partition holds no data and need not be written again.
func (b *Builder) Write(w io.WriterAt, o Options) (used int64, err error) {
	g, err := ComputeGeometry(o.TotalSectors)
	if err != nil {
		return 0, err
	}
	date, tm := dosDateTime(o.ModTime)

	// Allocate: directories breadth-first, then files in path order, each
	// as one contiguous run.
	next := uint32(2)
	alloc := func(size int) uint16 {
		if size == 0 {
			return 0
		}
		c := next
		next += uint32((size + ClusterSize - 1) / ClusterSize)
		return uint16(c)
	}
	var dirs, files []*node
	queue := []*node{b.root}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		dirs = append(dirs, d)
		for _, c := range sortedChildren(d) {
			if c.dir {
				queue = append(queue, c)
			} else {
				files = append(files, c)
			}
		}
	}
	// Short names first: directory sizes depend on the LFN entries.
	for _, d := range dirs {
		if err := assignShortNames(d); err != nil {
			return 0, err
		}
	}
	for _, d := range dirs[1:] {
		n := 2 // "." and ".."
		for _, c := range sortedChildren(d) {
			n += entryCount(c)
		}
		d.cluster = alloc(n * dirEntrySize)
	}
	for _, f := range files {
		f.cluster = alloc(len(f.data))
	}
	if next-2 > g.Clusters {
		return 0, fmt.Errorf("fat: content needs %d clusters, the file system has %d", next-2, g.Clusters)
	}

	// Directory contents, now that every cluster is known.
	for i, d := range dirs {
		var e []byte
		if i > 0 {
			e = append(e, shortEntry(dotName("."), attrDirectory, d.cluster, 0, date, tm)...)
			parent := parentOf(dirs, d)
			e = append(e, shortEntry(dotName(".."), attrDirectory, parent, 0, date, tm)...)
		}
		for _, c := range sortedChildren(d) {
			e = append(e, lfnEntries(c)...)
			attr, size := byte(attrArchive), uint32(len(c.data))
			if c.dir {
				attr, size = attrDirectory, 0
			}
			e = append(e, shortEntry(c.short, attr, c.cluster, size, date, tm)...)
		}
		if i == 0 && len(e) > RootEntries*dirEntrySize {
			return 0, fmt.Errorf("fat: root directory needs %d entries, it has %d", len(e)/dirEntrySize, RootEntries)
		}
		d.entries = e
	}

	// FAT: one contiguous chain per file and directory.
	fat := make([]byte, g.FATSectors*SectorSize)
	binary.LittleEndian.PutUint16(fat[0:], 0xFFF8)
	binary.LittleEndian.PutUint16(fat[2:], 0xFFFF)
	chain := func(first uint16, size int) {
		if first == 0 {
			return
		}
		n := (size + ClusterSize - 1) / ClusterSize
		for i := 0; i < n; i++ {
			c := int(first) + i
			v := uint16(c + 1)
			if i == n-1 {
				v = 0xFFFF
			}
			binary.LittleEndian.PutUint16(fat[2*c:], v)
		}
	}
	for _, d := range dirs[1:] {
		chain(d.cluster, len(d.entries))
	}
	for _, f := range files {
		chain(f.cluster, len(f.data))
	}

	writeAt := func(p []byte, off int64, what string) error {
		if _, err := w.WriteAt(p, off); err != nil {
			return fmt.Errorf("fat: writing %s: %w", what, err)
		}
		return nil
	}
	if err := writeAt(bootSector(g, o), 0, "boot sector"); err != nil {
		return 0, err
	}
	if err := writeAt(fat, ReservedSectors*SectorSize, "FAT"); err != nil {
		return 0, err
	}
	root := make([]byte, RootEntries*dirEntrySize)
	copy(root, dirs[0].entries)
	if err := writeAt(root, int64(g.RootSector)*SectorSize, "root directory"); err != nil {
		return 0, err
	}
	clusterOff := func(c uint16) int64 {
		return int64(g.DataSector)*SectorSize + int64(c-2)*ClusterSize
	}
	for _, d := range dirs[1:] {
		buf := make([]byte, roundUp(len(d.entries)))
		copy(buf, d.entries)
		if err := writeAt(buf, clusterOff(d.cluster), "directory "+d.name); err != nil {
			return 0, err
		}
	}
	for _, f := range files {
		if f.cluster == 0 {
			continue
		}
		buf := f.data
		if pad := roundUp(len(buf)) - len(buf); pad > 0 {
			buf = append(buf[:len(buf):len(buf)], make([]byte, pad)...)
		}
		if err := writeAt(buf, clusterOff(f.cluster), "file "+f.name); err != nil {
			return 0, err
		}
	}
	return int64(g.DataSector)*SectorSize + int64(next-2)*ClusterSize, nil
}

func roundUp(n int) int { return (n + ClusterSize - 1) / ClusterSize * ClusterSize }

func parentOf(dirs []*node, d *node) uint16 {
	for _, p := range dirs {
		for _, c := range p.children {
			if c == d {
				return p.cluster // the root's cluster is 0, as ".." requires
			}
		}
	}
	return 0
}

func sortedChildren(d *node) []*node {
	keys := make([]string, 0, len(d.children))
	for k := range d.children {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*node, len(keys))
	for i, k := range keys {
		out[i] = d.children[k]
	}
	return out
}

func bootSector(g Geometry, o Options) []byte {
	b := make([]byte, SectorSize)
	copy(b[0:3], []byte{0xEB, 0x3C, 0x90})
	copy(b[3:11], "PRESSCAP")
	binary.LittleEndian.PutUint16(b[11:], SectorSize)
	b[13] = SectorsPerCluster
	binary.LittleEndian.PutUint16(b[14:], ReservedSectors)
	b[16] = NumFATs
	binary.LittleEndian.PutUint16(b[17:], RootEntries)
	if g.TotalSectors < 0x10000 {
		binary.LittleEndian.PutUint16(b[19:], uint16(g.TotalSectors))
	} else {
		binary.LittleEndian.PutUint32(b[32:], g.TotalSectors)
	}
	b[21] = 0xF8 // fixed disk
	binary.LittleEndian.PutUint16(b[22:], uint16(g.FATSectors))
	binary.LittleEndian.PutUint16(b[24:], 32) // sectors per track
	binary.LittleEndian.PutUint16(b[26:], 64) // heads
	binary.LittleEndian.PutUint32(b[28:], o.HiddenSectors)
	b[36] = 0x80 // drive number
	b[38] = 0x29 // extended boot signature: the next three fields are valid
	binary.LittleEndian.PutUint32(b[39:], o.VolumeID)
	copy(b[43:54], "NO NAME    ")
	copy(b[54:62], "FAT16   ")
	// Not bootable through the BIOS: halt forever if someone tries.
	copy(b[62:], []byte{0xF4, 0xEB, 0xFD})
	b[510], b[511] = 0x55, 0xAA
	return b
}

func dosDateTime(t time.Time) (date, tm uint16) {
	t = t.UTC()
	if t.Year() < 1980 {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if t.Year() > 2107 {
		t = time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC)
	}
	date = uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day())
	tm = uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2)
	return date, tm
}

func shortEntry(name [11]byte, attr byte, cluster uint16, size uint32, date, tm uint16) []byte {
	e := make([]byte, dirEntrySize)
	copy(e[0:11], name[:])
	e[11] = attr
	binary.LittleEndian.PutUint16(e[14:], tm)
	binary.LittleEndian.PutUint16(e[16:], date)
	binary.LittleEndian.PutUint16(e[18:], date)
	binary.LittleEndian.PutUint16(e[22:], tm)
	binary.LittleEndian.PutUint16(e[24:], date)
	binary.LittleEndian.PutUint16(e[26:], cluster)
	binary.LittleEndian.PutUint32(e[28:], size)
	return e
}

func dotName(s string) [11]byte {
	var n [11]byte
	copy(n[:], []byte("           "))
	copy(n[:], s)
	return n
}

// shortChars are the characters allowed in an 8.3 name besides A–Z and 0–9.
const shortChars = "!#$%&'()-@^_`{}~"

// ShortBasis derives the 8.3 basis of a long name the way gokrazy's reader
// (and Windows) do: upper case, spaces and leading dots dropped, the part
// before the last dot cut to 8 characters and the extension to 3. fits is
// false when information was lost; such names get a numeric tail (~1, ~2...).
func ShortBasis(name string) (primary, ext string, fits bool) {
	basis := strings.ReplaceAll(strings.ToUpper(name), " ", "")
	basis = strings.TrimLeft(basis, ".")
	fits = basis == strings.ToUpper(name)
	primary, ext = basis, ""
	if i := strings.LastIndex(basis, "."); i >= 0 {
		primary, ext = basis[:i], basis[i+1:]
	}
	var p strings.Builder
	for _, r := range primary {
		switch {
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(shortChars, r):
			p.WriteRune(r)
		case r == '.':
			fits = false // inner dots cannot be kept
		default:
			p.WriteByte('_')
			fits = false
		}
	}
	primary = p.String()
	var e strings.Builder
	for _, r := range ext {
		switch {
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(shortChars, r):
			e.WriteRune(r)
		default:
			e.WriteByte('_')
			fits = false
		}
	}
	ext = e.String()
	if len(primary) > 8 {
		primary, fits = primary[:8], false
	}
	if len(ext) > 3 {
		ext, fits = ext[:3], false
	}
	if primary == "" {
		primary, fits = "_", false
	}
	return primary, ext, fits
}

func pack(primary, ext string) [11]byte {
	var n [11]byte
	copy(n[:], "           ")
	copy(n[0:8], primary)
	copy(n[8:11], ext)
	return n
}

func assignShortNames(d *node) error {
	seen := map[[11]byte]bool{}
	for _, c := range sortedChildren(d) {
		primary, ext, fits := ShortBasis(c.name)
		cand := pack(primary, ext)
		if fits && !seen[cand] {
			// Keep the name's own case in the short entry, as gokrazy's
			// writer does: gokrazy's reader finds an extensionless name
			// ("loader", "entries") only by an exact, case-sensitive
			// comparison with the stored bytes.
			c.short = pack(splitName(c.name))
			seen[cand] = true
			continue
		}
		found := false
		for n := 1; n <= 999999; n++ {
			tail := "~" + strconv.Itoa(n)
			p := primary
			if len(p)+len(tail) > 8 {
				p = p[:8-len(tail)]
			}
			cand = pack(p+tail, ext)
			if !seen[cand] {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("fat: no free short name for %q", c.name)
		}
		c.short = cand
		seen[cand] = true
	}
	return nil
}

func splitName(name string) (primary, ext string) {
	if i := strings.LastIndex(name, "."); i >= 0 {
		return name[:i], name[i+1:]
	}
	return name, ""
}

// lfnCharOffset is the byte offset in a long-name directory entry of its
// i-th UTF-16 character (of 13): five at 1, six at 14, two at 28.
func lfnCharOffset(i int) int {
	switch {
	case i < 5:
		return 1 + 2*i
	case i < 11:
		return 14 + 2*(i-5)
	}
	return 28 + 2*(i-11)
}

// needsLFN reports whether the short entry alone would lose the name or
// hold lower case, which only long names carry portably.
func needsLFN(n *node) bool {
	p := strings.TrimRight(string(n.short[0:8]), " ")
	e := strings.TrimRight(string(n.short[8:11]), " ")
	s := p
	if e != "" {
		s += "." + e
	}
	return s != n.name || s != strings.ToUpper(s)
}

func entryCount(n *node) int {
	if !needsLFN(n) {
		return 1
	}
	u := utf16.Encode([]rune(n.name))
	return 1 + (len(u)+12)/13
}

// ShortChecksum is the checksum LFN entries carry of their short name.
func ShortChecksum(name [11]byte) byte {
	var s byte
	for _, c := range name {
		s = (s&1)<<7 + s>>1 + c
	}
	return s
}

func lfnEntries(n *node) []byte {
	if !needsLFN(n) {
		return nil
	}
	u := utf16.Encode([]rune(n.name))
	count := (len(u) + 12) / 13
	chars := make([]uint16, count*13)
	for i := range chars {
		switch {
		case i < len(u):
			chars[i] = u[i]
		case i == len(u):
			chars[i] = 0
		default:
			chars[i] = 0xFFFF
		}
	}
	sum := ShortChecksum(n.short)
	out := make([]byte, 0, count*dirEntrySize)
	// Stored last part first.
	for seq := count; seq >= 1; seq-- {
		e := make([]byte, dirEntrySize)
		e[0] = byte(seq)
		if seq == count {
			e[0] |= 0x40
		}
		e[11] = attrLongName
		e[13] = sum
		part := chars[(seq-1)*13 : seq*13]
		for i, c := range part {
			binary.LittleEndian.PutUint16(e[lfnCharOffset(i):], c)
		}
		out = append(out, e...)
	}
	return out
}

package fat

import (
	"encoding/binary"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"unicode/utf16"
)

// FS reads a FAT16 file system that follows gokrazy's rules. Open rejects
// any other geometry, and reading a file whose clusters are not one
// contiguous run is an error: gokrazy's init could not rewrite it in place.
type FS struct {
	r        io.ReaderAt
	geom     Geometry
	fat      []uint16
	VolumeID uint32
	Hidden   uint32
}

// File is a directory entry as Walk and Stat report it.
type File struct {
	Path    string // slash-separated, long names
	Short   string // 8.3 name as stored, e.g. "CMDLINE.TXT"
	Dir     bool
	Size    int64
	Cluster uint16
}

// Open reads and checks the boot sector and the FAT.
func Open(r io.ReaderAt) (*FS, error) {
	b := make([]byte, SectorSize)
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("fat: reading boot sector: %w", err)
	}
	if b[510] != 0x55 || b[511] != 0xAA {
		return nil, fmt.Errorf("fat: boot sector signature (byte 510) is %02x %02x, want 55 aa", b[510], b[511])
	}
	check := func(field string, off int, got, want int) error {
		if got != want {
			return fmt.Errorf("fat: %s (byte %d) is %d, gokrazy needs %d", field, off, got, want)
		}
		return nil
	}
	for _, c := range []struct {
		f         string
		off       int
		got, want int
	}{
		{"bytes per sector", 11, int(binary.LittleEndian.Uint16(b[11:])), SectorSize},
		{"sectors per cluster", 13, int(b[13]), SectorsPerCluster},
		{"reserved sectors", 14, int(binary.LittleEndian.Uint16(b[14:])), ReservedSectors},
		{"number of FATs", 16, int(b[16]), NumFATs},
		{"root directory entries", 17, int(binary.LittleEndian.Uint16(b[17:])), RootEntries},
	} {
		if err := check(c.f, c.off, c.got, c.want); err != nil {
			return nil, err
		}
	}
	total := uint32(binary.LittleEndian.Uint16(b[19:]))
	if total == 0 {
		total = binary.LittleEndian.Uint32(b[32:])
	}
	g, err := ComputeGeometry(total)
	if err != nil {
		return nil, err
	}
	if got := uint32(binary.LittleEndian.Uint16(b[22:])); got != g.FATSectors {
		return nil, fmt.Errorf("fat: sectors per FAT (byte 22) is %d, %d sectors need %d", got, total, g.FATSectors)
	}
	raw := make([]byte, g.FATSectors*SectorSize)
	if _, err := r.ReadAt(raw, ReservedSectors*SectorSize); err != nil {
		return nil, fmt.Errorf("fat: reading FAT: %w", err)
	}
	fs := &FS{r: r, geom: g, fat: make([]uint16, len(raw)/2),
		VolumeID: binary.LittleEndian.Uint32(b[39:]), Hidden: binary.LittleEndian.Uint32(b[28:])}
	for i := range fs.fat {
		fs.fat[i] = binary.LittleEndian.Uint16(raw[2*i:])
	}
	if fs.fat[0] != 0xFF00|uint16(b[21]) {
		return nil, fmt.Errorf("fat: FAT entry 0 is %04x, want media byte %02x", fs.fat[0], b[21])
	}
	return fs, nil
}

// UsedBytes returns the offset just past the highest cluster in use.
func (fs *FS) UsedBytes() int64 {
	last := uint32(1)
	for c := uint32(2); c < fs.geom.Clusters+2 && int(c) < len(fs.fat); c++ {
		if fs.fat[c] != 0 {
			last = c
		}
	}
	return int64(fs.geom.DataSector)*SectorSize + int64(last-1)*ClusterSize
}

func (fs *FS) clusterOffset(c uint16) int64 {
	return int64(fs.geom.DataSector)*SectorSize + int64(c-2)*ClusterSize
}

// run returns the number of clusters in c's chain, and an error if the
// chain is not contiguous, loops, or leaves the file system.
func (fs *FS) run(c uint16, what string) (int, error) {
	if c < 2 || uint32(c) >= fs.geom.Clusters+2 {
		return 0, fmt.Errorf("fat: %s: first cluster %d out of range", what, c)
	}
	n := 1
	for {
		v := fs.fat[c]
		switch {
		case v >= 0xFFF8:
			return n, nil
		case v == uint16(c)+1:
			c = v
			n++
		case v == 0:
			return 0, fmt.Errorf("fat: %s: cluster %d is marked free inside the chain", what, c)
		default:
			return 0, fmt.Errorf("fat: %s: cluster %d continues at %d, not contiguous", what, c, v)
		}
		if uint32(n) > fs.geom.Clusters {
			return 0, fmt.Errorf("fat: %s: chain loops", what)
		}
	}
}

type rawEntry struct {
	long  string
	short [11]byte
	attr  byte
	clus  uint16
	size  uint32
}

func (e rawEntry) shortString() string {
	p := strings.TrimRight(string(e.short[0:8]), " ")
	x := strings.TrimRight(string(e.short[8:11]), " ")
	if x != "" {
		return p + "." + x
	}
	return p
}

func (e rawEntry) name() string {
	if e.long != "" {
		return e.long
	}
	return e.shortString()
}

// readDir returns the entries of the root (cluster 0) or a subdirectory,
// with long names assembled and their checksums verified.
func (fs *FS) readDir(cluster uint16, what string) ([]rawEntry, error) {
	var buf []byte
	if cluster == 0 {
		buf = make([]byte, RootEntries*dirEntrySize)
		if _, err := fs.r.ReadAt(buf, int64(fs.geom.RootSector)*SectorSize); err != nil {
			return nil, fmt.Errorf("fat: reading root directory: %w", err)
		}
	} else {
		n, err := fs.run(cluster, what)
		if err != nil {
			return nil, err
		}
		buf = make([]byte, n*ClusterSize)
		if _, err := fs.r.ReadAt(buf, fs.clusterOffset(cluster)); err != nil {
			return nil, fmt.Errorf("fat: reading directory %s: %w", what, err)
		}
	}
	var out []rawEntry
	var lfn []uint16
	var lfnSum byte
	var lfnNext int
	for off := 0; off+dirEntrySize <= len(buf); off += dirEntrySize {
		e := buf[off : off+dirEntrySize]
		if e[0] == 0 {
			break
		}
		if e[0] == 0xE5 {
			lfn = nil
			continue
		}
		if e[11] == attrLongName {
			seq := int(e[0] & 0x1F)
			if e[0]&0x40 != 0 {
				lfn, lfnSum, lfnNext = make([]uint16, seq*13), e[13], seq
			}
			if lfn == nil || seq != lfnNext || e[13] != lfnSum {
				return nil, fmt.Errorf("fat: %s: broken long name entry at byte %d", what, off)
			}
			part := lfn[(seq-1)*13 : seq*13]
			for i := range part {
				part[i] = binary.LittleEndian.Uint16(e[lfnCharOffset(i):])
			}
			lfnNext--
			continue
		}
		var re rawEntry
		copy(re.short[:], e[0:11])
		re.attr = e[11]
		re.clus = binary.LittleEndian.Uint16(e[26:])
		re.size = binary.LittleEndian.Uint32(e[28:])
		if lfn != nil {
			if lfnNext != 0 || ShortChecksum(re.short) != lfnSum {
				return nil, fmt.Errorf("fat: %s: long name of %q does not belong to it (byte %d)", what, re.shortString(), off)
			}
			end := len(lfn)
			for i, c := range lfn {
				if c == 0 {
					end = i
					break
				}
			}
			re.long = string(utf16.Decode(lfn[:end]))
		}
		lfn = nil
		if re.attr&0x08 != 0 { // volume label
			continue
		}
		if n := re.shortString(); n == "." || n == ".." {
			continue
		}
		out = append(out, re)
	}
	return out, nil
}

// Walk calls fn for every file and directory, parents before children,
// in name order.
func (fs *FS) Walk(fn func(File) error) error {
	return fs.walk(0, "", fn)
}

func (fs *FS) walk(cluster uint16, dir string, fn func(File) error) error {
	what := dir
	if what == "" {
		what = "/"
	}
	entries, err := fs.readDir(cluster, what)
	if err != nil {
		return err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name() < entries[j].name() })
	for _, e := range entries {
		p := path.Join(dir, e.name())
		f := File{Path: p, Short: e.shortString(), Dir: e.attr&attrDirectory != 0, Size: int64(e.size), Cluster: e.clus}
		if err := fn(f); err != nil {
			return err
		}
		if f.Dir {
			if err := fs.walk(e.clus, p, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// Stat finds a file by its long name, case-insensitively.
func (fs *FS) Stat(p string) (File, error) {
	p = strings.Trim(path.Clean("/"+p), "/")
	var cluster uint16
	var cur File
	parts := strings.Split(p, "/")
	for i, c := range parts {
		entries, err := fs.readDir(cluster, "/"+strings.Join(parts[:i], "/"))
		if err != nil {
			return File{}, err
		}
		found := false
		for _, e := range entries {
			if strings.EqualFold(e.name(), c) || strings.EqualFold(e.shortString(), c) {
				cur = File{Path: strings.Join(parts[:i+1], "/"), Short: e.shortString(), Dir: e.attr&attrDirectory != 0, Size: int64(e.size), Cluster: e.clus}
				found = true
				break
			}
		}
		if !found {
			return File{}, fmt.Errorf("fat: %s: not found", "/"+strings.Join(parts[:i+1], "/"))
		}
		if i < len(parts)-1 {
			if !cur.Dir {
				return File{}, fmt.Errorf("fat: %s: not a directory", cur.Path)
			}
			cluster = cur.Cluster
		}
	}
	return cur, nil
}

// Extents returns the byte offset and length of a file, which must be
// stored contiguously.
func (fs *FS) Extents(p string) (offset, length int64, err error) {
	f, err := fs.Stat(p)
	if err != nil {
		return 0, 0, err
	}
	if f.Dir {
		return 0, 0, fmt.Errorf("fat: %s is a directory", p)
	}
	if f.Size == 0 {
		return 0, 0, nil
	}
	n, err := fs.run(f.Cluster, p)
	if err != nil {
		return 0, 0, err
	}
	if need := (f.Size + ClusterSize - 1) / ClusterSize; int64(n) != need {
		return 0, 0, fmt.Errorf("fat: %s: %d bytes need %d clusters, the chain has %d", p, f.Size, need, n)
	}
	return fs.clusterOffset(f.Cluster), f.Size, nil
}

// ReadFile returns a file's contents.
func (fs *FS) ReadFile(p string) ([]byte, error) {
	off, n, err := fs.Extents(p)
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := fs.r.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("fat: reading %s: %w", p, err)
	}
	return b, nil
}

// GokrazyExtents looks a file up the way gokrazy's on-device reader does,
// quirks included, so a test can prove the update's root switch will find
// cmdline.txt and loader/entries/gokrazy.conf: each path component's 8.3
// name is derived with a ~1 tail and always compared with a dot appended
// ("LOADER."), so an extensionless component only matches through the
// reader's fallback, an exact case-sensitive comparison of the stored bytes
// with the component. Directories are scanned for RootEntries entries.
func (fs *FS) GokrazyExtents(p string) (offset, length int64, err error) {
	dirOff := int64(fs.geom.RootSector) * SectorSize
	for _, comp := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		primary, ext, fits := ShortBasis(comp)
		if !fits {
			tail := "~1"
			if len(primary)+len(tail) > 8 {
				primary = primary[:8-len(tail)]
			}
			primary += tail
		}
		shortName := primary + "." + ext
		found := false
		for i := 0; i < RootEntries; i++ {
			e := make([]byte, dirEntrySize)
			if _, err := fs.r.ReadAt(e, dirOff+int64(i*dirEntrySize)); err != nil {
				return 0, 0, fmt.Errorf("fat: %s: %w", p, err)
			}
			if e[0] == 0 {
				continue
			}
			name := string(e[0:8])
			if idx := strings.IndexByte(name, ' '); idx >= 0 {
				name = name[:idx]
			}
			if e[8] != ' ' {
				name += "." + string(e[8:11])
			}
			if !strings.EqualFold(name, shortName) && name != comp {
				continue
			}
			off := fs.clusterOffset(binary.LittleEndian.Uint16(e[26:]))
			if e[11] == attrDirectory {
				dirOff = off
				found = true
				break
			}
			return off, int64(binary.LittleEndian.Uint32(e[28:])), nil
		}
		if !found {
			return 0, 0, fmt.Errorf("fat: %s: %q not found the way gokrazy looks", p, comp)
		}
	}
	return 0, 0, fmt.Errorf("fat: %s is a directory", p)
}

package ringfs

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/presscap/presscap/internal/safefile"
)

const (
	metaName   = "ring.json"
	maxMeta    = 1 << 20 // bytes; Create writes a few hundred
	metaFormat = formatPrefix + "2"
	// formatPrefix and formatVersion make metaFormat; an older version
	// is told apart from another program's ring.json (ErrOldFormat).
	formatPrefix  = "presscap-ring/"
	formatVersion = 2
	maxSegSize    = 1 << 30
	minSegSize    = 4 << 20
	wantSegs      = 16
	defBlock      = 1 << 20
	minBlock      = 64 << 10
	maxBlock      = 16 << 20
	defInterval   = time.Second
	maxSize       = 1 << 50 // 1 PiB: a million segment files
)

// meta is ring.json: everything about a ring that is not in its segments.
type meta struct {
	Format      string        `json:"format"`
	RingID      uint64        `json:"ring_id"`
	Size        int64         `json:"size"`
	SegmentSize int64         `json:"segment_size"`
	Segments    int           `json:"segments"`
	BlockSize   int           `json:"block_size"`
	MaxAge      time.Duration `json:"max_age_ns"`
	Links       []Link        `json:"links"`
	// Encrypted: blocks are sealed under the key whose id KeyID is, kept
	// in a key file outside the ring (see seal.go).
	Encrypted bool   `json:"encrypted,omitempty"`
	KeyID     string `json:"key_id,omitempty"`
}

// dataOff is where a segment's data area starts: after the header page and an
// index area big enough for one entry per smallest (one-page) block.
func (m *meta) dataOff() int64 {
	idx := (m.SegmentSize/pageSize*indexEntrySize + pageSize - 1) / pageSize * pageSize
	return pageSize + idx
}

func (m *meta) segPath(dir string, i int) string {
	return filepath.Join(dir, fmt.Sprintf("seg-%06d", i))
}

// geometry picks the segment layout for a ring of size bytes: about 16
// segments, so overwriting the oldest one frees a sixteenth of the ring.
func geometry(size int64, block int) (segSize int64, segs int, err error) {
	if size < MinSize {
		return 0, 0, fmt.Errorf("ring size %d bytes is too small: the minimum is %d (64 MiB)", size, MinSize)
	}
	if block == 0 {
		block = defBlock
	}
	if block < minBlock || block > maxBlock || block%pageSize != 0 {
		return 0, 0, fmt.Errorf("block size %d: must be a multiple of %d from %d to %d", block, pageSize, minBlock, maxBlock)
	}
	segSize = size / wantSegs / (1 << 20) * (1 << 20)
	segSize = max(segSize, minSegSize, int64(4*block))
	segSize = min(segSize, maxSegSize)
	return segSize, int(size / segSize), nil
}

// MaxLinkName is the longest link name a ring holds, in bytes.
const MaxLinkName = 128

// CheckLinkName reports why name cannot name a link: link names come from
// interfaces and from imported files and end up in ring.json, logs and
// exported files, so they are short printable text and never look like a
// path.
func CheckLinkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty link name")
	case len(name) > MaxLinkName:
		return fmt.Errorf("link name of %d bytes, over the limit of %d", len(name), MaxLinkName)
	case !utf8.ValidString(name):
		return fmt.Errorf("link name %q is not UTF-8", name)
	case name == "." || name == "..":
		return fmt.Errorf("link name %q is a path", name)
	}
	for i, c := range name {
		if c == '/' || unicode.IsControl(c) {
			return fmt.Errorf("link name %q has %q at byte %d (no '/' or control characters)", name, c, i)
		}
	}
	return nil
}

func readMeta(dir string) (*meta, error) {
	// ring.json is on the customer's disk: a FIFO there must not block the
	// probe, nor a sparse 20 GB file become a 20 GB allocation.
	b, err := safefile.ReadFile(filepath.Join(dir, metaName), maxMeta)
	if err != nil {
		if errors.Is(err, safefile.ErrNotRegular) {
			return nil, fmt.Errorf("%w: %w", err, ErrOccupied)
		}
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(dir); serr != nil {
				return nil, fmt.Errorf("ring %s: %w", dir, serr)
			}
			return nil, fmt.Errorf("ring %s: %w", dir, ErrNoRing)
		}
		return nil, fmt.Errorf("ring %s: %w", dir, err)
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("ring %s: %s: %v: %w", dir, metaName, err, ErrNotRing)
	}
	if n, ok := olderFormat(m.Format); ok {
		return nil, fmt.Errorf("ring %s: %s: format %q, this build reads only %q (format %d is no longer read): %w: %w",
			dir, metaName, m.Format, metaFormat, n, ErrOldFormat, ErrNotRing)
	}
	if m.Format != metaFormat {
		return nil, fmt.Errorf("ring %s: %s: format %q, want %q: %w", dir, metaName, m.Format, metaFormat, ErrNotRing)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("ring %s: %s: %v: %w", dir, metaName, err, ErrNotRing)
	}
	return &m, nil
}

// olderFormat says whether format names a presscap ring of an earlier
// format version than this build writes, and which.
func olderFormat(format string) (int, bool) {
	v, ok := strings.CutPrefix(format, formatPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n >= formatVersion || strconv.Itoa(n) != v {
		return 0, false
	}
	return n, true
}

// check refuses what Create never writes, naming the field: ring.json is on
// the customer's disk, and a geometry that does not add up would make the
// writer and the readers place blocks where the other does not look.
func (m *meta) check() error {
	if m.RingID == 0 {
		return errors.New("ring_id 0: a ring's id is never 0")
	}
	if m.BlockSize < minBlock || m.BlockSize > maxBlock || m.BlockSize%pageSize != 0 {
		return fmt.Errorf("block_size %d: must be a multiple of %d from %d to %d", m.BlockSize, pageSize, minBlock, maxBlock)
	}
	if m.Size > maxSize {
		return fmt.Errorf("size %d: over the largest ring, %d", m.Size, int64(maxSize))
	}
	seg, n, err := geometry(m.Size, m.BlockSize)
	if err != nil {
		return fmt.Errorf("size: %v", err)
	}
	if m.SegmentSize != seg {
		return fmt.Errorf("segment_size %d: a ring of size %d with block_size %d has segments of %d", m.SegmentSize, m.Size, m.BlockSize, seg)
	}
	if m.Segments != n {
		return fmt.Errorf("segments %d: a ring of size %d with block_size %d has %d", m.Segments, m.Size, m.BlockSize, n)
	}
	if m.Encrypted != (m.KeyID != "") {
		return fmt.Errorf("encrypted %v with key_id %q: an encrypted ring names its key, a clear one none", m.Encrypted, m.KeyID)
	}
	if m.MaxAge < 0 {
		return fmt.Errorf("max_age_ns %d is negative", m.MaxAge)
	}
	if len(m.Links) > 1<<16 {
		return fmt.Errorf("links: %d, more than link ids can number (%d)", len(m.Links), 1<<16)
	}
	seen := make(map[string]int, len(m.Links))
	for i, l := range m.Links {
		if err := CheckLinkName(l.Name); err != nil {
			return fmt.Errorf("links[%d].name: %v", i, err)
		}
		if j, dup := seen[l.Name]; dup {
			return fmt.Errorf("links[%d].name %q repeats links[%d]", i, l.Name, j)
		}
		seen[l.Name] = i
	}
	return nil
}

// writeMeta replaces ring.json atomically, so a crash leaves the old or the
// new version, never a mix.
func writeMeta(dir string, m *meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := safefile.WriteFile(filepath.Join(dir, metaName), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("ring metadata: %w", err)
	}
	return safefile.SyncDir(dir)
}

func newRingID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) | 1
}

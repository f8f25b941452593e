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
	"time"

	"github.com/presscap/presscap/ringfs/atomicfile"
)

const (
	metaName    = "ring.json"
	metaFormat  = "presscap-ring/1"
	maxSegSize  = 1 << 30
	minSegSize  = 4 << 20
	wantSegs    = 16
	defBlock    = 1 << 20
	minBlock    = 64 << 10
	maxBlock    = 16 << 20
	defInterval = time.Second
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

func readMeta(dir string) (*meta, error) {
	b, err := os.ReadFile(filepath.Join(dir, metaName))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(dir); serr != nil {
				return nil, fmt.Errorf("ring %s: %w", dir, serr)
			}
			return nil, fmt.Errorf("ring %s: no %s: %w", dir, metaName, ErrNotRing)
		}
		return nil, fmt.Errorf("ring %s: %w", dir, err)
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("ring %s: %s: %v: %w", dir, metaName, err, ErrNotRing)
	}
	if m.Format != metaFormat {
		return nil, fmt.Errorf("ring %s: %s: format %q, want %q: %w", dir, metaName, m.Format, metaFormat, ErrNotRing)
	}
	seg, n, err := geometry(m.Size, m.BlockSize)
	if err != nil || seg != m.SegmentSize || n != m.Segments {
		return nil, fmt.Errorf("ring %s: %s: inconsistent geometry (size %d, segment_size %d, segments %d, block_size %d): %w",
			dir, metaName, m.Size, m.SegmentSize, m.Segments, m.BlockSize, ErrNotRing)
	}
	return &m, nil
}

// writeMeta replaces ring.json atomically, so a crash leaves the old or the
// new version, never a mix.
func writeMeta(dir string, m *meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, metaName), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("ring metadata: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

func newRingID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) | 1
}

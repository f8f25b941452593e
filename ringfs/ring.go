// Package ringfs is the on-disk packet ring: a fixed-size, preallocated store
// of captured packets that overwrites its oldest data, survives power cuts with
// bounded loss, and cuts time windows out of itself quickly however large it is.
//
// A ring is a directory holding ring.json (size, geometry, links) and a fixed
// number of preallocated segment files. A segment is a header page, an index
// area (one 64-byte entry per block) and a data area written as a log of
// blocks. Every block is self-describing (magic, segment generation, sequence
// number, time range, counts) and protected by CRC32C, so a torn or corrupt
// block is detected and never returned. The writer fills one segment after the
// other; starting a segment gives it a new generation, which invalidates all
// the older data in it at once.
//
// One process writes (Create or Open); any number of goroutines may Read at the
// same time, and other processes may Open the ring read-only and Read while it
// is being written.
package ringfs

import (
	"errors"
	"fmt"
	"time"
)

// Link describes one capture link (interface). Records refer to links by the
// id AddLink returned.
type Link struct {
	Name     string `json:"name"`      // interface name, e.g. "eth0"; unique within a ring
	LinkType uint32 `json:"link_type"` // pcap LINKTYPE_ value, e.g. 1 for Ethernet
	SnapLen  uint32 `json:"snap_len"`  // the capture's snap length (0: 262144)
}

// Record is one packet as stored in the ring.
type Record struct {
	Time    int64  // capture time, Unix nanoseconds; need not be monotonic
	Link    uint16 // id returned by AddLink
	OrigLen uint32 // length on the wire; ≥ len(Data) for sliced packets
	Data    []byte // captured bytes
}

// Options configure Create and Open. The zero value is usable for Open.
type Options struct {
	// Size is the ring's total size in bytes for Create (at least MinSize).
	// Ignored by Open: the size is fixed at creation.
	Size int64
	// FlushInterval bounds the data lost on a crash or power cut: the writer
	// makes everything appended durable at least this often. Default 1s.
	// A negative value disables the background flush (call Flush yourself).
	FlushInterval time.Duration
	// MaxAge, if non-zero, hides every packet whose timestamp is older than
	// the ring's "now" minus MaxAge, where now is the latest timestamp of the
	// most recently written block (not the wall clock, which on a Pi without
	// RTC is what may be wrong): such packets are never returned and their
	// space counts as free. The bytes stay on disk until overwritten. Create stores it in the ring;
	// A writer's Open applies its MaxAge, 0 (none) included, and stores it;
	// a read-only Open applies the stricter of its non-zero MaxAge and the
	// stored value.
	MaxAge time.Duration
	// ReadOnly opens an existing ring for reading only, for example while
	// another process writes it. Only Open honours it.
	ReadOnly bool
	// BlockSize is the largest block in bytes for Create (a multiple of 4096,
	// 64 KiB to 16 MiB; default 1 MiB). Packets larger than a block are refused.
	BlockSize int
	// Encrypt makes Create seal every block (ChaCha20-Poly1305) under a
	// new random key kept in KeyDir, never in the ring's directory.
	Encrypt bool
	// KeyDir holds the key files of encrypted rings (the probe's state
	// directory on the SD card). Create with Encrypt writes the key there;
	// Open of an encrypted ring reads it (ErrNoKey, ErrWrongKey), and the
	// writer keeps its session's epoch in it. Unused for a clear ring.
	KeyDir string
	// Buffered disables O_DIRECT writes (for filesystems without it, e.g. tmpfs,
	// where it is also chosen automatically).
	Buffered bool
}

// MinSize is the smallest ring Create accepts.
const MinSize = 64 << 20

// Info summarises a ring's live contents (expired data is not counted).
type Info struct {
	Dir         string        `json:"dir"`
	Size        int64         `json:"size"`
	SegmentSize int64         `json:"segment_size"`
	Segments    int           `json:"segments"`
	BlockSize   int           `json:"block_size"`
	MaxAge      time.Duration `json:"max_age_ns"`
	Links       []Link        `json:"links"`
	Encrypted   bool          `json:"encrypted"`
	// Oldest and Newest are the smallest and largest record timestamps (Unix ns)
	// in the ring; they are zero when the ring holds no packets.
	Oldest  int64  `json:"oldest_ns"`
	Newest  int64  `json:"newest_ns"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"` // captured bytes of the packets
	Drops   uint64 `json:"drops"` // packets the capture reported lost (AddDrops)
	Blocks  int    `json:"blocks"`
	Used    int64  `json:"used"` // bytes of live blocks on disk
}

// ReadStats reports what a Read found in its window.
type ReadStats struct {
	Packets uint64 // records passed to fn
	Bytes   uint64 // captured bytes of those records
	Drops   uint64 // drops recorded (AddDrops) with a time inside the window
	// Truncated is set when part of the window is missing from the ring:
	// it no longer reached back to the window's start when the read began
	// (or never did), max_age hid it, or the writer overwrote part of the
	// window while it was being read. The records delivered are still
	// correct and in order. Reason says which (one of the Reason values):
	// the first found; Reasons lists every one found, in that order (a
	// ring that did not reach back to the start may also be overtaken
	// later in the window, leaving a hole inside what is delivered).
	Truncated bool
	Reason    string
	Reasons   []string
	// Oldest, when Truncated, is how far back the ring reached (Unix ns):
	// the oldest record time it held, or max_age's limit; 0 if the ring
	// held nothing.
	Oldest int64
	// Missing, when Truncated, is how much of the window's time the ring
	// lacked, in nanoseconds (an estimate when the writer overtook the
	// reader: the time range of the blocks it overwrote unread).
	Missing int64
	// Corrupt counts blocks skipped because their checksum or header was
	// wrong (torn writes, media errors); their records are never returned.
	Corrupt int
	// Blocks counts the blocks read from disk: those whose time range
	// overlaps the window, found through the index.
	Blocks int
}

// Reasons a read is truncated (ReadStats.Reason).
const (
	// ReasonNotReached: the ring had wrapped, and its oldest record was
	// younger than the window's start.
	ReasonNotReached = "ring_did_not_reach_back"
	// ReasonOvertaken: the writer overwrote blocks of the window before
	// they were read.
	ReasonOvertaken = "writer_overtook_reader"
	// ReasonMaxAge: the window's start is older than MaxAge allows.
	ReasonMaxAge = "max_age"
	// ReasonYounger: the ring never held the window's start (it began
	// recording later and has never wrapped).
	ReasonYounger = "ring_younger_than_window"
)

// Errors callers may test with errors.Is.
var (
	ErrNotRing = errors.New("not a presscap ring")
	// ErrNoRing: the directory holds no ring at all (no ring.json), as
	// opposed to a ring that does not open. It is also ErrNotRing.
	ErrNoRing = fmt.Errorf("no %s: %w", metaName, ErrNotRing)
	// ErrOldFormat: the directory holds a presscap ring of an earlier
	// format version, which this build does not read (it is also
	// ErrNotRing). Its packets cannot be read; Remove makes room for a
	// new ring.
	ErrOldFormat = errors.New("presscap ring of an older format")
	ErrClosed    = errors.New("ring is closed")
	ErrReadOnly  = errors.New("ring is open read-only")
	ErrTooLarge  = errors.New("record larger than a block")
	ErrBadWindow = errors.New("window start is after its end")
)

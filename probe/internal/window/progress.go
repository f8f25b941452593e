package window

import "github.com/presscap/presscap/ringfs"

// Progress is how far a window's files were written and made durable: the
// pending record keeps it, so that a restart continues the files from there
// instead of cutting again from a ring that may no longer hold the start.
type Progress struct {
	Ring  string      `json:"ring"` // the ring read (storage.Manager.RingID)
	Dir   string      `json:"dir"`  // where the files are written
	Pos   ringfs.Pos  `json:"pos"`
	Files []FileState `json:"files"`
	Drops uint64      `json:"drops"`
	// What the ring lacked so far (see ringfs.ReadStats).
	Corrupt   int      `json:"corrupt_blocks,omitempty"`
	Truncated bool     `json:"truncated,omitempty"`
	Reason    string   `json:"reason,omitempty"`
	Reasons   []string `json:"reasons,omitempty"`
	Oldest    int64    `json:"ring_oldest_ns,omitempty"`
	Missing   int64    `json:"missing_ns,omitempty"`
}

// FileState is one partial file: its durable length and what it holds.
type FileState struct {
	Name    string `json:"name"` // the export's name
	Size    int64  `json:"size"`
	Header  int64  `json:"header"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

package config

import (
	"fmt"
	"path/filepath"
	"strings"
)

func (s Storage) validate() Errors {
	var es Errors
	if s.Label == "" && !s.FirstUSB && s.Device == "" && !s.FallbackPerm {
		es.Add("", "no way to find a disk: set label, first_usb, device or fallback_perm")
	}
	if len(s.Label) > 16 {
		es.Add("label", "%q is longer than an ext4 label (16 bytes)", s.Label)
	}
	if s.Device != "" && !filepath.IsAbs(s.Device) {
		es.Add("device", "%q is not an absolute path", s.Device)
	}
	for _, p := range []struct{ field, v string }{
		{"mount_point", s.MountPoint}, {"perm_dir", s.PermDir}, {"state_dir", s.StateDir},
		{"sys_block", s.SysBlock}, {"dev_dir", s.DevDir},
	} {
		if !filepath.IsAbs(p.v) || filepath.Clean(p.v) == "/" {
			es.Add(p.field, "%q is not an absolute path below /", p.v)
		}
	}
	if len(s.FSTypes) == 0 {
		es.Add("fs_types", "is empty")
	}
	for i, fs := range s.FSTypes {
		switch fs {
		case "ext4", "ext3", "ext2", "vfat", "exfat", "btrfs", "xfs", "f2fs":
		default:
			es.Add(fmt.Sprintf("fs_types[%d]", i), "%q is not a supported filesystem", fs)
		}
	}
	switch s.Output {
	case OutputQueue, OutputRoot:
	default:
		es.Add("output", "%q is not one of queue, root", s.Output)
	}
	if err := relPath(s.QueueDir, false); err != nil {
		es.AddErr("queue_dir", "bad path", err)
	}
	// "." is the storage root itself: the files land beside ring/.
	if err := relPath(s.SaveDir, true); err != nil {
		es.AddErr("save_dir", "bad path", err)
	}
	checkPeriod(&es, "retry", s.Retry)
	return es
}

// outputOverlaps compares ring.dir, storage.queue_dir and storage.save_dir
// as the disk sees them: cleaned, and without case (vfat folds it). With
// refusals it returns what could put the ring among the files of a press
// (uploaded, or removed with them) or a press's files into the ring's
// directory; otherwise what is harmless: an overlap with save_dir while
// the output is the queue (it is not written), or between the queue and
// the save dir (each only holds files the probe named).
func (c Config) outputOverlaps(refusals bool) Errors {
	var es Errors
	ring, queue, save := diskPath(c.Ring.Dir), diskPath(c.Storage.QueueDir), diskPath(c.Storage.SaveDir)
	if ring == "" || queue == "" || save == "" || ring == "." || queue == "." {
		return nil // a bad path, reported by its own check
	}
	toRoot := c.Storage.Output == OutputRoot
	if refusals && overlap(ring, queue) {
		es.Add("ring.dir", "%q and storage.queue_dir %q are the same directory or one holds the other: the ring's segments would be among the files to upload", c.Ring.Dir, c.Storage.QueueDir)
	}
	// The storage root as save dir holds ring/ as a sibling of the files.
	if save != "." && overlap(ring, save) {
		switch {
		case refusals && (toRoot || ring == save):
			es.Add("ring.dir", "%q and storage.save_dir %q are the same directory or one holds the other: a press's files would be mixed with the ring's segments", c.Ring.Dir, c.Storage.SaveDir)
		case !refusals && !toRoot && ring != save:
			es.Add("storage.save_dir", "%q overlaps ring.dir %q (unused while storage.output is %q)", c.Storage.SaveDir, c.Ring.Dir, c.Storage.Output)
		}
	}
	if !refusals && toRoot && save != "." && overlap(queue, save) {
		es.Add("storage.save_dir", "%q overlaps storage.queue_dir %q: files saved there may be uploaded or mixed with the queue", c.Storage.SaveDir, c.Storage.QueueDir)
	}
	return es
}

// diskPath is p cleaned and case-folded, or "" when it is not a path
// inside the storage root.
func diskPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return ""
	}
	p = filepath.Clean(p)
	if p == ".." || strings.HasPrefix(p, "../") {
		return ""
	}
	return strings.ToLower(p)
}

// overlap says whether cleaned paths a and b are the same or nested.
func overlap(a, b string) bool {
	return a == b || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/")
}

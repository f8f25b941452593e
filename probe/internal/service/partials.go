package service

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/presscap/presscap/probe/internal/export"
	"github.com/presscap/presscap/probe/internal/filenames"
)

// cleanPartials removes the partial files in dir that no window will
// continue: a window's own are renamed or removed by its save, but those of
// a window whose record went (a save dir changed and back, a record that
// was unreadable) would stay for good. Only names the probe gives its
// partial files are touched, and none of a window that has a follower, is
// open or has a record; if the records cannot all be read, nothing is.
func (s *Service) cleanPartials(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var found []string
	for _, e := range entries {
		if name, ok := strings.CutPrefix(e.Name(), export.PartialPrefix); ok && e.Type().IsRegular() && filenames.Produced(name) {
			found = append(found, e.Name())
		}
	}
	if len(found) == 0 {
		return
	}
	// Listed before the windows are: a follower registers before it makes
	// its files, so one that made a file listed above is counted below.
	var bases []string
	s.mu.Lock()
	unread := s.pendUnread
	for _, f := range s.follows {
		bases = append(bases, f.base)
	}
	for _, w := range s.windows.Pending() {
		bases = append(bases, export.FileBase(s.host, &w))
	}
	s.mu.Unlock()
	if unread {
		return
	}
	ws, err := s.pend.Windows()
	if err != nil {
		return
	}
	for _, w := range ws {
		bases = append(bases, export.FileBase(s.host, w))
	}
	var removed []string
	for _, name := range found {
		if !export.KeptPartial(name, bases) && os.Remove(filepath.Join(dir, name)) == nil {
			removed = append(removed, name)
		}
	}
	if len(removed) > 0 {
		s.logf("removed %d partial files no window continues from %s: %s", len(removed), dir, strings.Join(removed, ", "))
	}
}

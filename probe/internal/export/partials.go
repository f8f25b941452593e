package export

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/presscap/presscap/probe/internal/filenames"
)

// CleanPartials removes the partial files in dir that no window will
// continue, and returns their names: a window's own are renamed or removed
// by its save, but those of a window whose record went (a save dir changed
// and back, a record that was unreadable) would stay for good. Only names
// the probe gives its partial files are touched. wanted returns the file
// bases (FileBase) of every window whose partial files may be continued;
// false if they are not all known (a record that cannot be read), and then
// nothing is removed. It is asked after dir is listed, so that a window
// that made a listed file before it was counted among them is.
func CleanPartials(dir string, wanted func() (bases []string, ok bool)) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var found []string
	for _, e := range entries {
		if name, ok := strings.CutPrefix(e.Name(), PartialPrefix); ok && e.Type().IsRegular() && filenames.Produced(name) {
			found = append(found, e.Name())
		}
	}
	if len(found) == 0 {
		return nil
	}
	bases, ok := wanted()
	if !ok {
		return nil
	}
	var removed []string
	for _, name := range found {
		if !keptPartial(name, bases) && os.Remove(filepath.Join(dir, name)) == nil {
			removed = append(removed, name)
		}
	}
	return removed
}

// keptPartial says whether the partial file name belongs to one of the
// windows with these file bases.
func keptPartial(name string, bases []string) bool {
	for _, b := range bases {
		if strings.HasPrefix(name, PartialPrefix+b+"_") {
			return true
		}
	}
	return false
}

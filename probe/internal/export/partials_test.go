package export

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/internal/window"
)

// TestCleanPartials: the partial files of windows whose bases are not
// wanted are removed and named; those of wanted bases stay, and so does
// every name the probe does not give its partial files. While the wanted
// bases are not all known, nothing is removed.
func TestCleanPartials(t *testing.T) {
	dir := t.TempDir()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	win := func(id, sec int) *window.Window {
		p := base.Add(time.Duration(sec) * time.Second)
		return &window.Window{ID: id, Presses: []window.PressInfo{{Time: p, Synced: true}}, From: p.Add(-time.Second), To: p.Add(time.Second)}
	}
	stale, kept := win(1, 0), win(2, 10)
	specs := []Spec{{Name: "all"}, {Name: "sip", Format: "pcapng"}}
	var names []string
	for _, w := range []*window.Window{stale, kept} {
		for _, spec := range specs {
			names = append(names, PartialName(FileBase("probe", w), spec))
		}
	}
	foreign := []string{".partial-holiday.jpg", ".partial-", "probe_x.pcap", ".tmp-" + names[0][len(PartialPrefix):]}
	for _, n := range append(slices.Clone(names), foreign...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A directory with a partial file's name is not a partial file.
	if err := os.Mkdir(filepath.Join(dir, PartialName(FileBase("probe", win(3, 20)), specs[0])), 0o700); err != nil {
		t.Fatal(err)
	}
	left := func() []string { return testtool.DirNames(t, dir) }
	all := left()
	wanted := []string{FileBase("probe", kept)}

	if removed := CleanPartials(dir, func() ([]string, bool) { return wanted, false }); removed != nil || !slices.Equal(left(), all) {
		t.Errorf("with the wanted bases unknown: removed %v, left %v; want none removed", removed, left())
	}
	removed := CleanPartials(dir, func() ([]string, bool) { return wanted, true })
	if !slices.Equal(removed, names[:2]) {
		t.Errorf("removed %v, want the stale window's two partial files %v", removed, names[:2])
	}
	want := slices.DeleteFunc(slices.Clone(all), func(n string) bool { return slices.Contains(names[:2], n) })
	if got := left(); !slices.Equal(got, want) {
		t.Errorf("left %v, want %v", got, want)
	}
}

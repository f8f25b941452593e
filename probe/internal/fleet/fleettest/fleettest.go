// Package fleettest writes health reports as the server holds them, for
// tests of what reads them.
package fleettest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/presscap/presscap/probe/internal/fleet"
)

// Write puts r in dir as <id>.json, received by the server (mtime) at seen.
func Write(t testing.TB, dir string, r fleet.Report, seen time.Time) {
	t.Helper()
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, r.ID+".json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, seen, seen); err != nil {
		t.Fatal(err)
	}
}

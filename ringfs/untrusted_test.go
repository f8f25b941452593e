package ringfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestNotAFileRefused: the ring is on the customer's disk. A ring.json or
// segment that is a FIFO is refused at Open (it used to block the opener
// for ever, and with it recording), and so is a ring.json over 1 MiB
// (a sparse 20 GB one used to be read whole into memory).
func TestNotAFileRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		lay  func(t *testing.T, dir string, m *meta)
		want string
	}{
		{"ring.json is a FIFO", func(t *testing.T, dir string, _ *meta) {
			mkfifo(t, filepath.Join(dir, metaName))
		}, "ring.json is a FIFO"},
		{"segment is a FIFO", func(t *testing.T, dir string, m *meta) {
			mkfifo(t, m.segPath(dir, 1))
		}, "seg-000001 is a FIFO"},
		{"ring.json of 2 MiB", func(t *testing.T, dir string, _ *meta) {
			p := filepath.Join(dir, metaName)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			// Still valid JSON: only the size is wrong.
			b = append(b, bytes.Repeat([]byte{' '}, 2<<20)...)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "larger than 1048576 bytes"},
	} {
		for _, ro := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/read-only=%v", c.name, ro), func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "ring")
				r, err := Create(dir, testOpts())
				if err != nil {
					t.Fatal(err)
				}
				r.Close()
				m, err := readMeta(dir)
				if err != nil {
					t.Fatal(err)
				}
				c.lay(t, dir, m)
				done := make(chan error, 1)
				go func() {
					r, err := Open(dir, Options{ReadOnly: ro})
					if err == nil {
						r.Close()
					}
					done <- err
				}()
				select {
				case err = <-done:
				case <-time.After(10 * time.Second):
					t.Fatalf("Open (read-only %v) blocked", ro)
				}
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("Open (read-only %v): %v, want a refusal saying %q", ro, err, c.want)
				}
				if strings.Contains(c.want, "FIFO") && !errors.Is(err, ErrOccupied) {
					t.Errorf("Open (read-only %v): %v, want ErrOccupied", ro, err)
				}
			})
		}
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

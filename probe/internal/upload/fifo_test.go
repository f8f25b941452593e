package upload

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/safefile"
	"golang.org/x/sys/unix"
)

// TestUploadFileRefusesFIFO: a queue file swapped for a FIFO after the
// listing is refused at open, before any connection is used; it used to
// block the upload for ever.
func TestUploadFileRefusesFIFO(t *testing.T) {
	dir := t.TempDir()
	const name = "probe_20261127T020000.000Z_all.pcap"
	if err := unix.Mkfifo(filepath.Join(dir, name), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := uploadFile(context.Background(), nil, Config{}, dir, name, nil, nil, nil)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, safefile.ErrNotRegular) {
			t.Errorf("upload of a FIFO: %v, want a refusal (not a regular file)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the upload blocked on a FIFO in the queue")
	}
}

package upload_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/presscap/presscap/internal/testing/sshdtest"
	"github.com/presscap/presscap/probe/internal/upload"
)

// TestConnectionCutMidFile kills the sshd session while a file is being
// written: the file stays queued, nothing appears under its final name,
// and the next attempt completes with one copy and no .part.
func TestConnectionCutMidFile(t *testing.T) {
	r := newRig(t, sshdtest.Options{})
	data := r.put(t, "a_20261127T020000.000Z_all.pcap", 2<<20)
	ev := r.cutMidFile(t, "a_20261127T020000.000Z_all.pcap")
	if _, err := os.Stat(filepath.Join(r.remoteDir, "a_20261127T020000.000Z_all.pcap")); err == nil {
		t.Fatal("a half-written file appeared under its final name")
	}
	assertFile(t, filepath.Join(r.queueDir, "a_20261127T020000.000Z_all.pcap"), data)
	if k := ev.kinds(); !reflect.DeepEqual(k, []string{"uploading", "failed"}) {
		t.Fatalf("events %v", k)
	}

	u, _ := r.newUploader(t, nil)
	if err := u.UploadNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	assertFile(t, filepath.Join(r.remoteDir, "a_20261127T020000.000Z_all.pcap"), data)
	if got := r.remote(t); !reflect.DeepEqual(got, []string{"a_20261127T020000.000Z_all.pcap"}) {
		t.Fatalf("server holds %v, want just one file", got)
	}
	if got := names(t, r.queueDir); len(got) != 0 {
		t.Fatalf("queue %v after the retry", got)
	}
}

// TestCutAfterRename covers a cut between the rename on the server and the
// local removal: the file is sent again and replaces the first copy.
func TestCutAfterRename(t *testing.T) {
	r := newRig(t, sshdtest.Options{})
	data := r.put(t, "a_20261127T020000.000Z_all.pcap", 50<<10)
	if err := os.WriteFile(filepath.Join(r.remoteDir, "a_20261127T020000.000Z_all.pcap"), data[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	u, _ := r.newUploader(t, nil)
	if err := u.UploadNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	assertFile(t, filepath.Join(r.remoteDir, "a_20261127T020000.000Z_all.pcap"), data)
	if got := r.remote(t); !reflect.DeepEqual(got, []string{"a_20261127T020000.000Z_all.pcap"}) {
		t.Fatalf("server holds %v, want one file", got)
	}
}

// TestServerDiskFull uploads to a tiny tmpfs: the write fails, the queue
// is as it was, nothing sits under a final name and the .part is removed.
func TestServerDiskFull(t *testing.T) {
	r := newRig(t, sshdtest.Options{})
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "presscap-upload-test", r.remoteDir).CombinedOutput(); err != nil {
		t.Fatalf("mount a small tmpfs (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", r.remoteDir).Run() })
	big := r.put(t, "a-big_20261127T020000.000Z_all.pcap", 1<<20)
	small := r.put(t, "b-small_20261127T020000.000Z_all.pcap", 1000)
	manifest := r.put(t, "c_20261127T020000.000Z_manifest.json", 100)
	u, ev := r.newUploader(t, nil)
	err := u.UploadNow(context.Background())
	if err == nil {
		t.Fatal("upload into a full disk reported success")
	}
	t.Logf("full: %v", err)
	if !strings.Contains(err.Error(), "a-big_20261127T020000.000Z_all.pcap.part") || !strings.Contains(err.Error(), "server disk full") {
		t.Fatalf("error %q does not name the file", err)
	}
	assertFile(t, filepath.Join(r.queueDir, "a-big_20261127T020000.000Z_all.pcap"), big)
	assertFile(t, filepath.Join(r.queueDir, "b-small_20261127T020000.000Z_all.pcap"), small)
	assertFile(t, filepath.Join(r.queueDir, "c_20261127T020000.000Z_manifest.json"), manifest)
	if got := r.remote(t); len(got) != 0 {
		t.Fatalf("server holds %v after the failure, want nothing", got)
	}
	if ev.count(upload.Failed) != 1 || !strings.Contains(u.Status().LastError, "a-big_20261127T020000.000Z_all.pcap") {
		t.Fatalf("events %v, status %+v", ev.kinds(), u.Status())
	}

	// Read-only: creating the .part fails.
	if out, err := exec.Command("mount", "-o", "remount,ro", r.remoteDir).CombinedOutput(); err != nil {
		t.Fatalf("remount ro: %v: %s", err, out)
	}
	os.Remove(filepath.Join(r.queueDir, "a-big_20261127T020000.000Z_all.pcap"))
	err = u.UploadNow(context.Background())
	if err == nil || !strings.Contains(err.Error(), "create "+filepath.Join(r.remoteDir, "b-small_20261127T020000.000Z_all.pcap.part")) {
		t.Fatalf("read-only server dir: got %v", err)
	}
	assertFile(t, filepath.Join(r.queueDir, "b-small_20261127T020000.000Z_all.pcap"), small)
}

// TestSentDir moves uploaded files instead of deleting them.
func TestSentDir(t *testing.T) {
	r := newRig(t, sshdtest.Options{})
	data := r.put(t, "a_20261127T020000.000Z_all.pcap", 5000)
	r.cfg.SentDir = "sent"
	u, _ := r.newUploader(t, nil)
	if err := u.UploadNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	assertFile(t, filepath.Join(r.remoteDir, "a_20261127T020000.000Z_all.pcap"), data)
	assertFile(t, filepath.Join(r.queueDir, "sent", "a_20261127T020000.000Z_all.pcap"), data)
	if st := u.Status(); st.Files != 0 {
		t.Fatalf("sent folder counted as queue: %+v", st)
	}
}

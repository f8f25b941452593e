package upload_test

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/presscap/presscap/internal/testing/sshdtest"
)

func TestFullUploadByteIdentical(t *testing.T) {
	// sftp-server logs every rename: the order of operations is read from it.
	r := newRig(t, sshdtest.Options{SFTPLog: true})
	want := map[string][]byte{
		"probe_20261127T020000.000Z_all.pcap":      r.put(t, "probe_20261127T020000.000Z_all.pcap", 3<<20+17),
		"probe_20261127T020000.000Z_sip.pcap":      r.put(t, "probe_20261127T020000.000Z_sip.pcap", 1),
		"probe_20261127T020000.000Z_rtp.pcap":      r.put(t, "probe_20261127T020000.000Z_rtp.pcap", 0),
		"probe_20261127T020000.000Z_manifest.json": r.put(t, "probe_20261127T020000.000Z_manifest.json", 300),
		"probe_20261127T030000.000Z_all.pcap":      r.put(t, "probe_20261127T030000.000Z_all.pcap", 700<<10),
		"probe_20261127T030000.000Z_manifest.json": r.put(t, "probe_20261127T030000.000Z_manifest.json", 200),
		"probe_20261127T040000.000Z_big.pcapng":    r.put(t, "probe_20261127T040000.000Z_big.pcapng", 6<<20),
	}
	// Still being written by the exporter: must stay.
	r.put(t, ".probe-x.pcap", 10)
	r.put(t, "probe-y.pcap.tmp", 10)

	u, ev := r.newUploader(t, nil)
	if err := u.UploadNow(context.Background()); err != nil {
		t.Fatalf("UploadNow: %v\nsshd log:\n%s", err, r.srv.Log())
	}
	for name, b := range want {
		assertFile(t, filepath.Join(r.remoteDir, name), b)
	}
	if got := r.remote(t); len(got) != len(want) {
		t.Fatalf("server holds %v, want exactly the %d queued files", got, len(want))
	}
	if got := names(t, r.queueDir); !reflect.DeepEqual(got, []string{".probe-x.pcap", "probe-y.pcap.tmp"}) {
		t.Fatalf("queue after upload: %v, want only the files in progress", got)
	}
	// Manifests last: every rename of a .json comes after all others.
	renames := r.renames()
	if len(renames) != len(want) {
		t.Fatalf("sshd logged %d renames, want %d:\n%s\nlog:\n%s", len(renames), len(want), strings.Join(renames, "\n"), r.srv.Log())
	}
	for i, l := range renames {
		isManifest := strings.Contains(l, ".json.part")
		if isManifest != (i >= len(renames)-2) {
			t.Fatalf("rename %d out of order (manifests go last):\n%s", i, strings.Join(renames, "\n"))
		}
		if !strings.Contains(l, ".part\" new ") {
			t.Fatalf("rename not from .part: %s", l)
		}
	}
	if k := ev.kinds(); !reflect.DeepEqual(k, []string{"uploading", "uploaded"}) {
		t.Fatalf("events %v", k)
	}
	st := u.Status()
	if st.Files != 0 || !strings.HasPrefix(st.LastResult, "ok: 7 files") || st.LastError != "" {
		t.Fatalf("status after upload: %+v", st)
	}
}

// TestRemoteDirMissing: a missing remote directory is an error naming it,
// never a silently skipped file.
func TestRemoteDirMissing(t *testing.T) {
	r := newRig(t, sshdtest.Options{})
	r.put(t, "a_20261127T020000.000Z_all.pcap", 100)
	r.cfg.RemoteDir = filepath.Join(r.remoteDir, "nope")
	u, _ := r.newUploader(t, nil)
	err := u.UploadNow(context.Background())
	if err == nil || !strings.Contains(err.Error(), r.cfg.RemoteDir) {
		t.Fatalf("missing remote dir: %v", err)
	}
	if got := names(t, r.queueDir); len(got) != 1 {
		t.Fatalf("queue %v", got)
	}
}

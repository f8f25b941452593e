package upload_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/sshdtest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/internal/upload"
)

// TestStalePartRemoved: a cut upload leaves <name>.part on the server; the
// customer then deletes the saved window by hand. The next run removes that
// .part (and logs it) and touches nothing else in the shared remote dir:
// not another probe's .part, not a .part with this probe's host name that
// this probe did not write (another box flashed with the same image), and
// no final name. With an empty queue the run still cleans up.
func TestStalePartRemoved(t *testing.T) {
	t.Parallel()
	r := newRig(t, sshdtest.Options{})
	const ours = "probeA_20261127T020000.000Z_all.pcap"
	r.put(t, ours, 1<<20)
	r.cutMidFile(t, ours)
	stale := filepath.Join(r.remoteDir, ours+".part")
	if err := os.Remove(filepath.Join(r.queueDir, ours)); err != nil {
		t.Fatal(err)
	}

	keep := map[string]string{
		"probeB_20261127T020000.000Z_all.pcap.part": "another probe's upload in progress",
		"probeA_20261126T020000.000Z_all.pcap.part": "this host name, but not written by this probe",
		"probeA_20261126T020000.000Z_all.pcap":      "final name",
		"probeA_20261126T020000.000Z.json":          "final name",
		"probeB_20261127T020000.000Z_all.pcap":      "final name",
		"probeA_20261127T020000.000Z_all.pcap.x":    "not .part",
	}
	for n, s := range keep {
		if err := os.WriteFile(filepath.Join(r.remoteDir, n), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const next = "probeA_20261127T030000.000Z_sip.pcap"
	nextData := r.put(t, next, 5000)
	var log testtool.Log
	u, err := upload.New(r.cfg, r.queueDir, r.stateDir, nil, nil, log.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.UploadNow(context.Background()); err != nil {
		t.Fatalf("UploadNow: %v", err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Fatalf("stale %s still on the server", stale)
	}
	removed := log.Matching("removed stale")
	if len(removed) != 1 || !strings.Contains(removed[0], stale) {
		t.Fatalf("log of removals %q, want one naming %s", removed, stale)
	}
	t.Logf("log: %s", removed[0])
	for n, s := range keep {
		assertFile(t, filepath.Join(r.remoteDir, n), []byte(s))
	}
	assertFile(t, filepath.Join(r.remoteDir, next), nextData)
	want := []string{next}
	for n := range keep {
		want = append(want, n)
	}
	sort.Strings(want)
	if got := r.remote(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("server holds %v, want %v", got, want)
	}

	// Cut again, the saved window is moved away by hand, the queue is empty:
	// the run has nothing to send and still removes the .part.
	const third = "probeA_20261127T040000.000Z_all.pcap"
	r.put(t, third, 1<<20)
	r.cutMidFile(t, third)
	if err := os.Rename(filepath.Join(r.queueDir, third), filepath.Join(t.TempDir(), third)); err != nil {
		t.Fatal(err)
	}
	if err := u.UploadNow(context.Background()); err != nil {
		t.Fatalf("UploadNow of an empty queue: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.remoteDir, third+".part")); err == nil {
		t.Fatalf("stale %s.part left with an empty queue", third)
	}
	if removed := log.Matching("removed stale"); len(removed) != 2 {
		t.Fatalf("log of removals %q, want a second one", removed)
	}
	if got := r.remote(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("server holds %v, want %v", got, want)
	}
	// Nothing is left to clean: no connection, no log line.
	if err := u.UploadNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(log.Matching("stale")); n != 2 {
		t.Fatalf("%d log lines about stale files, want still 2", n)
	}
}

// TestStalePartOtherServerKept: the record of a stale .part names the server
// it was written to; after the configuration moved to another server (here
// the same sshd under another name) the .part is not this probe's to judge
// there: it is left alone, the record dropped, and the log says so.
func TestStalePartOtherServerKept(t *testing.T) {
	t.Parallel()
	r := newRig(t, sshdtest.Options{})
	const ours = "probeA_20261127T020000.000Z_all.pcap"
	r.put(t, ours, 1<<20)
	r.cutMidFile(t, ours)
	part := filepath.Join(r.remoteDir, ours+".part")
	before, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(r.queueDir, ours)); err != nil {
		t.Fatal(err)
	}
	var log testtool.Log
	cfg := r.cfg
	cfg.Server = fmt.Sprintf("localhost:%d", r.srv.Port)
	u, err := upload.New(cfg, r.queueDir, r.stateDir, nil, nil, log.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.UploadNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	assertFile(t, part, before)
	if l := log.Matching("not this server"); len(l) != 1 || !strings.Contains(l[0], part) {
		t.Fatalf("log %q, want one line saying %s was left on the old server", log.Matching(""), part)
	}
	// The record is gone: back on the first server nothing is removed.
	u, err = upload.New(r.cfg, r.queueDir, r.stateDir, nil, nil, log.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.UploadNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	assertFile(t, part, before)
	if l := log.Matching("removed stale"); len(l) != 0 {
		t.Fatalf("removed after the record was dropped: %q", l)
	}
}

// TestInFlightPartOfAnotherProcessKept: `probe upload -test` runs as another
// process on the same state dir and records its test file's .part, a name
// never in the queue. A service upload meanwhile must not take that record
// for a stale one: the .part in flight and its record stay, whether the
// record is held by another journal in this process or by another process
// (flock(1) holding the same lock). Once the holder is gone without done,
// as a cut test leaves it, the next run removes the .part.
func TestInFlightPartOfAnotherProcessKept(t *testing.T) {
	t.Parallel()
	r := newRig(t, sshdtest.Options{})
	const self = ".presscap-test-0123456789abcdef.txt"
	part := filepath.Join(r.remoteDir, self+".part")
	partData := []byte("presscap upload test 0123456789abcdef\n")
	if err := os.WriteFile(part, partData, 0o644); err != nil {
		t.Fatal(err)
	}
	release, err := upload.HoldPart(r.cfg, r.stateDir, self, part)
	if err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(r.stateDir, "upload-parts", self)
	if _, err := os.Stat(record); err != nil {
		t.Fatalf("no record of the test's .part: %v", err)
	}
	const next = "probeA_20261127T030000.000Z_sip.pcap"
	nextData := r.put(t, next, 5000)
	var log testtool.Log
	u, err := upload.New(r.cfg, r.queueDir, r.stateDir, nil, nil, log.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.UploadNow(context.Background()); err != nil {
		t.Fatalf("UploadNow: %v", err)
	}
	assertFile(t, filepath.Join(r.remoteDir, next), nextData)
	assertFile(t, part, partData)
	if _, err := os.Stat(record); err != nil {
		t.Fatalf("record of the .part in flight dropped: %v", err)
	}
	if l := log.Matching("stale"); len(l) != 0 {
		t.Fatalf("the .part in flight was judged stale: %q", l)
	}

	release()

	// Another process takes the lock, as the self-test's writer does.
	flock := testtool.Path(t, "flock", "util-linux")
	holder := exec.Command(flock, "-x", record, "cat")
	stdin, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	testtool.WaitFor(t, "flock(1) to hold "+record, 10*time.Second, func() bool {
		return exec.Command(flock, "-n", "-x", record, "true").Run() != nil
	})
	if err := u.UploadNow(context.Background()); err != nil {
		t.Fatalf("UploadNow of an empty queue: %v", err)
	}
	assertFile(t, part, partData)
	if l := log.Matching("stale"); len(l) != 0 {
		t.Fatalf("the .part held by another process was judged stale: %q", l)
	}
	stdin.Close()
	if err := holder.Wait(); err != nil {
		t.Fatalf("flock(1): %v", err)
	}

	if err := u.UploadNow(context.Background()); err != nil {
		t.Fatalf("UploadNow of an empty queue: %v", err)
	}
	if _, err := os.Stat(part); err == nil {
		t.Fatalf("%s left on the server after the test's process was gone", part)
	}
	if _, err := os.Stat(record); err == nil {
		t.Fatalf("record %s kept after its .part was removed", record)
	}
	if l := log.Matching("removed stale"); len(l) != 1 || !strings.Contains(l[0], part) {
		t.Fatalf("log of removals %q, want one naming %s", l, part)
	}
	if got, want := r.remote(t), []string{next}; !reflect.DeepEqual(got, want) {
		t.Fatalf("server holds %v, want %v", got, want)
	}
}

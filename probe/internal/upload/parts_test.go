package upload

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/presscap/presscap/internal/testing/testtool"
	"golang.org/x/sys/unix"
)

// TestPartJournalZeroRecordsNothing: a nil journal and a zero one (no dir)
// record nothing, and in particular write nothing to the working directory.
func TestPartJournalZeroRecordsNothing(t *testing.T) {
	cwd := t.TempDir()
	t.Chdir(cwd)
	for _, j := range []*partJournal{nil, {}} {
		release := j.add("a.pcap", partRecord{Server: "h:22", User: "u", Path: "/in/a.pcap.part"})
		names, recs, err := j.records()
		if err != nil || names != nil || recs != nil {
			t.Errorf("records of %#v: %v %v %v, want nothing", j, names, recs, err)
		}
		j.done("a.pcap")
		release()
	}
	if entries, err := os.ReadDir(cwd); err != nil || len(entries) != 0 {
		t.Fatalf("working directory holds %v (%v), want nothing", entries, err)
	}
}

// TestPartJournalLock: a record is written whole under its name (no
// temporary left behind; a temporary from a cut write removed, one being
// written kept), is locked while its upload is in flight so the clean-up
// cannot claim it, and can be claimed once released.
func TestPartJournalLock(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	var logged []string
	logf := func(format string, args ...any) { logged = append(logged, format) }
	j := newPartJournal(state, logf)
	rec := partRecord{Server: "h:22", User: "u", Path: "/in/a.pcap.part"}
	release := j.add("a.pcap", rec)
	dir := filepath.Join(state, partsDir)
	// A temporary left by a power cut mid-write, and one being written
	// (locked by its writer).
	if err := os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte(`{"ser`), 0o600); err != nil {
		t.Fatal(err)
	}
	writing, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		t.Fatal(err)
	}
	defer writing.Close()
	if err := unix.Flock(int(writing.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	names, recs, err := j.records()
	if err != nil || !reflect.DeepEqual(names, []string{"a.pcap"}) || recs["a.pcap"] != rec {
		t.Fatalf("records: %v %v %v, want a.pcap %v", names, recs, err, rec)
	}
	assertDir(t, dir, "a.pcap", filepath.Base(writing.Name()))
	writing.Close()
	if _, _, err := j.records(); err != nil {
		t.Fatal(err)
	}
	assertDir(t, dir, "a.pcap")

	// Another journal on the same dir stands for another process.
	other := newPartJournal(state, logf)
	if cl, err := other.claim("a.pcap"); cl != nil || err != nil {
		t.Fatalf("claimed a record in flight: %v, err %v", cl, err)
	}
	release()
	cl, err := other.claim("a.pcap")
	if cl == nil || err != nil {
		t.Fatalf("cannot claim a released record: err %v", err)
	}
	if cl.rec != rec {
		t.Fatalf("claimed record %v, want %v", cl.rec, rec)
	}
	if err := cl.done(); err != nil {
		t.Fatal(err)
	}
	cl.release()
	if cl, err := other.claim("a.pcap"); cl != nil || err != nil {
		t.Fatalf("claimed a record that is done: %v, err %v", cl, err)
	}
	assertDir(t, dir)
	if len(logged) != 0 {
		t.Fatalf("logged %q", logged)
	}
}

// TestPartJournalClaimDeadRecord: the clean-up opens a record, and before it
// takes the lock the writer finishes (done, release) and a new upload of
// the same name records anew. The lock on the old, unlinked file must not
// count as a claim, and a claim must act on the new record as read under
// its lock, never delete a record it did not lock.
func TestPartJournalClaimDeadRecord(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	j := newPartJournal(state, t.Errorf)
	oldRec := partRecord{Server: "h:22", User: "u", Path: "/old/a.pcap.part"}
	newRec := partRecord{Server: "h:22", User: "u", Path: "/new/a.pcap.part"}
	p := filepath.Join(state, partsDir, "a.pcap")

	j.add("a.pcap", oldRec)()
	opened, err := os.Open(p) // the clean-up's open
	if err != nil {
		t.Fatal(err)
	}
	defer opened.Close()
	j.done("a.pcap") // the writer finishes between the open and the flock
	if ok, err := lockLinked(opened, p); ok || err != nil {
		t.Fatalf("lock of an unlinked record: ok %v, err %v; want not claimable", ok, err)
	}
	opened.Close()

	if _, err := os.Stat(p); err == nil {
		t.Fatalf("record still there after done")
	}
	j.add("a.pcap", oldRec)()
	if opened, err = os.Open(p); err != nil {
		t.Fatal(err)
	}
	j.done("a.pcap")
	releaseNew := j.add("a.pcap", newRec) // recorded anew, in flight
	if ok, err := lockLinked(opened, p); ok || err != nil {
		t.Fatalf("lock of a replaced record: ok %v, err %v; want not claimable", ok, err)
	}
	opened.Close()
	releaseNew()

	// Claimed, then replaced before done: done must keep the new record.
	cl, err := j.claim("a.pcap")
	if cl == nil || err != nil || cl.rec != newRec {
		t.Fatalf("claim: %v, %v; want %v", cl, err, newRec)
	}
	j.add("a.pcap", oldRec)() // renamed over the claimed record
	if err := cl.done(); err != nil {
		t.Fatal(err)
	}
	cl.release()
	if b, err := os.ReadFile(p); err != nil || !strings.Contains(string(b), oldRec.Path) {
		t.Fatalf("record replaced after the claim was deleted by done: %q, %v", b, err)
	}
}

// TestPartJournalClaimUnreadable: a locked record that does not parse (left
// empty by a power cut in an older version) is dropped and logged.
func TestPartJournalClaimUnreadable(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	var logged []string
	j := newPartJournal(state, func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) })
	if err := os.MkdirAll(filepath.Join(state, partsDir), 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(state, partsDir, "a.pcap")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if cl, err := j.claim("a.pcap"); cl != nil || err != nil {
		t.Fatalf("claimed an empty record: %v, %v", cl, err)
	}
	if _, err := os.Stat(p); err == nil {
		t.Fatalf("empty record kept")
	}
	if len(logged) != 1 || !strings.Contains(logged[0], p) {
		t.Fatalf("logged %q, want one line naming %s", logged, p)
	}
}

func assertDir(t *testing.T, dir string, want ...string) {
	t.Helper()
	got := testtool.DirNames(t, dir)
	sort.Strings(want)
	if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
		t.Fatalf("%s holds %q, want %q", dir, got, want)
	}
}

// TestPartJournalAddWhileListing: records removes the temporaries it can
// lock, and may lock a writer's temporary before the writer does; the
// writer must then write its record anew rather than lose it.
func TestPartJournalAddWhileListing(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	var mu sync.Mutex
	var logged []string
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logged = append(logged, fmt.Sprintf(format, args...))
	}
	writer := newPartJournal(state, logf)
	lister := newPartJournal(state, logf)
	stop := make(chan struct{})
	listed := make(chan error)
	go func() {
		for {
			select {
			case <-stop:
				close(listed)
				return
			default:
			}
			if _, _, err := lister.records(); err != nil {
				listed <- err
			}
		}
	}()
	const n = 200
	for i := range n {
		writer.add(fmt.Sprintf("f%03d.pcap", i), partRecord{Server: "h:22", User: "u", Path: fmt.Sprintf("/in/f%03d.pcap.part", i)})()
	}
	close(stop)
	for err := range listed {
		t.Error(err)
	}
	names, _, err := writer.records()
	if err != nil || len(names) != n {
		t.Fatalf("%d records (%v), want %d", len(names), err, n)
	}
	assertDir(t, filepath.Join(state, partsDir), names...)
	if len(logged) != 0 {
		t.Fatalf("logged %q", logged)
	}
}

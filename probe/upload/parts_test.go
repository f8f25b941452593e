package upload

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
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
// temporary left behind, a temporary from a cut write ignored), is locked
// while its upload is in flight so the clean-up cannot claim it, and can be
// claimed once released.
func TestPartJournalLock(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	var logged []string
	logf := func(format string, args ...any) { logged = append(logged, format) }
	j := newPartJournal(state, logf)
	rec := partRecord{Server: "h:22", User: "u", Path: "/in/a.pcap.part"}
	release := j.add("a.pcap", rec)
	// A temporary left by a power cut mid-write.
	if err := os.WriteFile(filepath.Join(state, partsDir, ".tmp-123"), []byte(`{"ser`), 0o600); err != nil {
		t.Fatal(err)
	}
	names, recs, err := j.records()
	if err != nil || !reflect.DeepEqual(names, []string{"a.pcap"}) || recs["a.pcap"] != rec {
		t.Fatalf("records: %v %v %v, want a.pcap %v", names, recs, err, rec)
	}
	entries, _ := os.ReadDir(filepath.Join(state, partsDir))
	if len(entries) != 2 {
		t.Fatalf("journal holds %v, want a.pcap and the planted temporary", entries)
	}

	// Another journal on the same dir stands for another process.
	other := newPartJournal(state, logf)
	if _, ok, err := other.claim("a.pcap"); ok || err != nil {
		t.Fatalf("claimed a record in flight: ok %v, err %v", ok, err)
	}
	release()
	rel, ok, err := other.claim("a.pcap")
	if !ok || err != nil {
		t.Fatalf("cannot claim a released record: ok %v, err %v", ok, err)
	}
	other.done("a.pcap")
	rel()
	if _, ok, err := other.claim("a.pcap"); ok || err != nil {
		t.Fatalf("claimed a record that is done: ok %v, err %v", ok, err)
	}
	if len(logged) != 0 {
		t.Fatalf("logged %q", logged)
	}
}

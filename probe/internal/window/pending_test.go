package window

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestParseRecordNamesTheProblem: bad records name the file and the byte
// or field; a good one round-trips.
func TestParseRecordNamesTheProblem(t *testing.T) {
	dir := t.TempDir()
	st := Store{Dir: dir}
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	w := Window{ID: 3, From: at.Add(-time.Second), To: at.Add(time.Second),
		Presses: []PressInfo{{Time: at, Synced: false, Source: "/dev/input/event0", Key: "F5"}}, Ring: "00c0ffee00c0ffee",
		BootID: "b", EndBoot: 42 * time.Second}
	if err := st.Save(w); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "2.json.corrupt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ws, bad, maxID, err := st.Load()
	if err != nil || len(bad) != 0 || len(ws) != 1 || maxID != 3 || !ws[0].To.Equal(w.To) || ws[0].Synced() || ws[0].Presses[0].Key != "F5" || ws[0].Ring != w.Ring || ws[0].BootID != "b" || ws[0].EndBoot != w.EndBoot {
		t.Fatalf("round trip: %v %+v %d", bad, ws, maxID)
	}
	if err := os.WriteFile(filepath.Join(dir, "12.json.corrupt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, maxID, _ := st.Load(); maxID != 12 {
		t.Errorf("highest id %d with 12.json.corrupt there, want 12", maxID)
	}
	for body, want := range map[string]string{
		`{"id": "3"}`: `field id at byte`,
		`{"id": 4, "from": "2026-11-27T10:00:00Z", "`: `at byte`,
		`{"id": 3}`: `field from: missing`,
		`{"id": 3, "from": "2026-11-27T10:00:00Z", "to": "2026-11-27T10:00:01Z"}`: `field presses`,
	} {
		_, err := ParseRecord(filepath.Join(dir, "3.json"), []byte(body))
		var be *BadRecordError
		if !errors.As(err, &be) || !strings.Contains(err.Error(), "3.json") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
}

// TestPendingLoadReadErrors: a pending directory that cannot be listed is
// an error (not an empty list: new ids would start at 1 over the records
// in it); a record that cannot be read is reported and left in place,
// not moved aside, and its id still counts; a record that makes no sense
// is moved aside.
func TestPendingLoadReadErrors(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if ws, bad, maxID, err := (Store{Dir: notDir}).Load(); err == nil || ws != nil || bad != nil || maxID != 0 {
		t.Errorf("listing a file: %v %v %d %v, want an error", ws, bad, maxID, err)
	}
	if _, _, _, err := (Store{Dir: filepath.Join(dir, "none")}).Load(); err != nil {
		t.Errorf("a missing directory is no error: %v", err)
	}
	pend := filepath.Join(dir, "pending")
	if err := os.Mkdir(pend, 0o700); err != nil {
		t.Fatal(err)
	}
	// A symlink to itself: reading it fails (ELOOP), as an I/O error would.
	if err := os.Symlink("15.json", filepath.Join(pend, "15.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pend, "4.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	ws, bad, maxID, err := (Store{Dir: pend}).Load()
	if err != nil || len(ws) != 0 || len(bad) != 2 || maxID != 15 {
		t.Fatalf("load: %v %v %d %v", ws, bad, maxID, err)
	}
	if _, err := os.Lstat(filepath.Join(pend, "15.json")); err != nil {
		t.Errorf("the unreadable record was not left in place: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(pend, "15.json.corrupt")); err == nil {
		t.Error("the unreadable record was moved aside")
	}
	if _, err := os.Stat(filepath.Join(pend, "4.json.corrupt")); err != nil {
		t.Errorf("the record that makes no sense was not moved aside: %v", err)
	}
	msgs := fmt.Sprint(bad)
	if !strings.Contains(msgs, "15.json") || !strings.Contains(msgs, "left in place") {
		t.Errorf("report %q does not name the unreadable record", msgs)
	}
}

// TestPendingRecordProfileChecked: a pending record's profile goes into
// file names, so one that is not a profile name is refused.
func TestPendingRecordProfileChecked(t *testing.T) {
	body := `{"id": 3, "profile": "../x", "from": "2026-11-27T10:00:00Z", "to": "2026-11-27T10:00:01Z", "presses": [{"time": "2026-11-27T10:00:00.5Z"}]}`
	_, err := ParseRecord("3.json", []byte(body))
	var be *BadRecordError
	if !errors.As(err, &be) || be.Field != "profile" {
		t.Fatalf("record with profile ../x: %v", err)
	}
	w, err := ParseRecord("3.json", []byte(strings.Replace(body, "../x", "phone", 1)))
	if err != nil || w.Profile != "phone" {
		t.Fatalf("record with profile phone: %+v, %v", w, err)
	}
}

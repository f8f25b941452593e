package window

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestPendingHugeIDCannotWrapNextID: a record or stray file whose name is
// an id near the integer limit does not make the next window's id wrap
// around to a negative number.
func TestPendingHugeIDCannotWrapNextID(t *testing.T) {
	dir := t.TempDir()
	st := Store{Dir: dir}
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	if err := st.Save(Window{ID: 7, From: at.Add(-time.Second), To: at.Add(time.Second), Presses: []PressInfo{{Time: at}}}); err != nil {
		t.Fatal(err)
	}
	huge := strconv.Itoa(int(^uint(0) >> 1)) // math.MaxInt
	body := fmt.Sprintf(`{"id": %s, "from": "2026-11-27T10:00:00Z", "to": "2026-11-27T10:00:01Z", "presses": [{"time": "2026-11-27T10:00:00Z"}]}`, huge)
	if err := os.WriteFile(filepath.Join(dir, huge+".json"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(MaxID+1)+".json.corrupt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ws, bad, maxID, err := st.Load()
	if err != nil || len(ws) != 1 || len(bad) != 1 || maxID != 7 {
		t.Fatalf("load: %d windows, bad %v, highest id %d, err %v; want window 7 and the huge one refused", len(ws), bad, maxID, err)
	}
	var w Windows
	w.Reserve(maxID)
	if _, got := w.Press(PressInfo{Time: at.Add(time.Hour)}); got.ID != 8 {
		t.Errorf("next id %d, want 8", got.ID)
	}
	// The refused record is kept aside, and its name does not count on
	// the next start either.
	if _, _, maxID, _ := st.Load(); maxID != 7 {
		t.Errorf("second start: highest id %d, want 7", maxID)
	}
}

// TestPendingIDAtLimit: a stray file named with exactly the highest id a
// record may hold does not become the highest id so far: the next window
// would take the id after it, which no record may hold, and be refused at
// the next start.
func TestPendingIDAtLimit(t *testing.T) {
	dir := t.TempDir()
	st := Store{Dir: dir}
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	if err := st.Save(Window{ID: 7, From: at.Add(-time.Second), To: at.Add(time.Second), Presses: []PressInfo{{Time: at}}}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(MaxID)+".json.corrupt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, maxID, err := st.Load()
	if err != nil || maxID != 7 {
		t.Fatalf("highest id %d (%v), want 7", maxID, err)
	}
	var w Windows
	w.Reserve(maxID)
	_, got := w.Press(PressInfo{Time: at.Add(time.Hour)})
	next := at.Add(time.Hour)
	if err := st.Save(Window{ID: got.ID, From: next.Add(-time.Second), To: next.Add(time.Second), Presses: []PressInfo{{Time: next}}}); err != nil {
		t.Fatal(err)
	}
	if ws, bad, _, err := st.Load(); err != nil || len(bad) != 0 || len(ws) != 2 || ws[1].ID != 8 {
		t.Errorf("next start: %d windows, bad %v, err %v; want windows 7 and 8", len(ws), bad, err)
	}
}

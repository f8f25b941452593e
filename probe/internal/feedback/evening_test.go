package feedback

import (
	"reflect"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// sounds records what a Feedback was asked to sound.
type sounds struct {
	Nop
	mu   sync.Mutex
	list []string
}

func (s *sounds) add(x string) { s.mu.Lock(); s.list = append(s.list, x); s.mu.Unlock() }
func (s *sounds) Pressed(int)  { s.add("pressed") }
func (s *sounds) Saved()       { s.add("saved") }
func (s *sounds) Uploaded()    { s.add("uploaded") }
func (s *sounds) Fault(r string) {
	s.add("fault: " + r)
}

// TestEvening: in the quiet hours only a press is answered (pressed,
// saved, not saved); outside them a retried upload failure sounds once,
// and again only after an upload succeeded. The synctest bubble's clock
// starts at midnight UTC.
func TestEvening(t *testing.T) {
	synctest.Test(t, testEvening)
}

func testEvening(t *testing.T) {
	var out sounds
	time.Sleep(22 * time.Hour)
	e := &Evening{Feedback: &out,
		Quiet: func(t time.Time) bool { return t.UTC().Hour() >= 21 || t.UTC().Hour() < 8 }}
	var fb Feedback = e
	fb.Uploaded()
	fb.Fault(FaultUpload)
	fb.Fault(FaultRecovery)
	fb.Pressed(0)
	fb.Saved()
	fb.Fault(FaultNotSaved)
	want := []string{"pressed", "saved", "fault: " + FaultNotSaved}
	if !reflect.DeepEqual(out.list, want) {
		t.Fatalf("at 22:00: %q, want %q", out.list, want)
	}

	out.list = nil
	time.Sleep(12 * time.Hour) // 10:00 the next day
	fb.Fault(FaultUpload)      // still the night's fault: not new
	fb.Uploaded()
	fb.Fault(FaultUpload)
	fb.Fault(FaultUpload)
	fb.Fault(FaultUpload)
	fb.Uploaded()
	fb.Fault(FaultUpload)
	fb.Fault(FaultNotSaved)
	fb.Fault(FaultNotSaved)
	want = []string{"uploaded", "fault: " + FaultUpload, "uploaded", "fault: " + FaultUpload,
		"fault: " + FaultNotSaved, "fault: " + FaultNotSaved}
	if !reflect.DeepEqual(out.list, want) {
		t.Fatalf("at 10:00: %q, want %q", out.list, want)
	}
}

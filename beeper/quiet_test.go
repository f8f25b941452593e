package beeper

import (
	"strings"
	"testing"
	"time"
)

// TestQuietAt: the quiet hours include their start and exclude their end,
// across midnight or not, on the clock of the time's own zone.
func TestQuietAt(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2026, 12, 6, h, m, 0, 0, time.UTC) }
	for _, tc := range []struct {
		quiet string
		at    time.Time
		want  bool
	}{
		{"21:00-08:00", at(20, 59), false},
		{"21:00-08:00", at(21, 0), true},
		{"21:00-08:00", at(0, 0), true},
		{"21:00-08:00", at(7, 59), true},
		{"21:00-08:00", at(8, 0), false},
		{"21:00-08:00", at(12, 0), false},
		{"13:00-14:00", at(13, 30), true},
		{"13:00-14:00", at(14, 0), false},
		{"13:00-14:00", at(12, 59), false},
		{"", at(23, 0), false},
	} {
		if got := (Config{Quiet: tc.quiet}).QuietAt(tc.at); got != tc.want {
			t.Errorf("%q at %s: quiet %v, want %v", tc.quiet, tc.at.Format("15:04"), got, tc.want)
		}
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	// 20:30 UTC is 21:30 in Berlin in winter.
	c := Config{Quiet: "21:00-08:00"}
	if c.QuietAt(at(20, 30)) || !c.QuietAt(at(20, 30).In(berlin)) {
		t.Error("the quiet hours are not on the time's own clock")
	}
}

// TestQuietValidate: a bad beeper.quiet is refused naming the field.
func TestQuietValidate(t *testing.T) {
	for _, q := range []string{"21:00", "21:00-8:00", "25:00-08:00", "21:00-08:60", "08:00-08:00", "nine-five"} {
		err := Config{Volume: 70, Quiet: q}.Validate()
		if err == nil || !strings.Contains(err.Error(), "beeper.quiet") {
			t.Errorf("%q: %v", q, err)
		}
	}
	for _, q := range []string{"", "21:00-08:00", "00:00-23:59"} {
		if err := (Config{Volume: 70, Quiet: q}).Validate(); err != nil {
			t.Errorf("%q refused: %v", q, err)
		}
	}
}

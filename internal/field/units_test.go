package field

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestParseSize: the one parser of configuration files and -size flags.
// A bare letter and IEC units count in 1024s, SI units in 1000s.
func TestParseSize(t *testing.T) {
	for in, want := range map[string]Size{
		"4G": 4 << 30, "64M": 64 << 20, "64MiB": 64 << 20, "4GiB": 4 << 30, "4gib": 4 << 30,
		"500MB": 500e6, "100k": 100 << 10, "2 GiB": 2 << 30, "1048576": 1 << 20, "7B": 7, "1T": 1 << 40,
	} {
		if got, err := ParseSize(in); got != want || err != nil {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"lots": `"lots": want a number`, "": `"": want a number`, "4X": `unknown unit "X"`,
		"-1G": "out of range", "9999999999T": "out of range", "1.5G": `"1.5G": want a number`,
	} {
		if got, err := ParseSize(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSize(%q) = %d, %v; want an error containing %s", in, got, err, want)
		}
	}
}

// TestDurationJSON: durations are strings both ways; a bare number is
// refused (it would be nanoseconds).
func TestDurationJSON(t *testing.T) {
	var d Duration
	if err := json.Unmarshal([]byte(`"1m30s"`), &d); err != nil || d.D() != 90*time.Second {
		t.Errorf("unmarshal \"1m30s\": %v, %v", d, err)
	}
	if b, err := json.Marshal(Duration(90 * time.Second)); err != nil || string(b) != `"1m30s"` {
		t.Errorf("marshal: %s, %v", b, err)
	}
	for _, in := range []string{`30`, `"30"`, `"soon"`} {
		if err := json.Unmarshal([]byte(in), &d); err == nil || !strings.Contains(err.Error(), "want a duration") {
			t.Errorf("unmarshal %s: %v, want a refusal", in, err)
		}
	}
}

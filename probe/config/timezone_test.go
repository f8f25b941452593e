package config

import (
	"strings"
	"testing"
)

// TestOneTimeZone: clock.time_zone is the zone of upload.time too; an
// earlier version's upload.time_zone moves there with a warning, equal
// zones only warn, and two different zones are a field error.
func TestOneTimeZone(t *testing.T) {
	for _, tc := range []struct {
		name, file       string
		clock, upload    string // the zones in force
		warning, problem string // in upload.time_zone
	}{
		{"clock only", `{"clock": {"time_zone": "Europe/Berlin"}}`, "Europe/Berlin", "Europe/Berlin", "", ""},
		{"neither", `{}`, "Local", "Local", "", ""},
		{"old file", `{"upload": {"time_zone": "America/New_York"}}`, "America/New_York", "America/New_York", `deprecated: "America/New_York" now set as clock.time_zone`, ""},
		{"old file, Local", `{"upload": {"time_zone": "Local"}}`, "Local", "Local", "", ""},
		{"both equal (a file written out)", `{"clock": {"time_zone": "UTC"}, "upload": {"time_zone": "UTC"}}`, "UTC", "UTC", "", ""},
		{"both differ", `{"clock": {"time_zone": "UTC"}, "upload": {"time_zone": "Europe/Berlin"}}`, "UTC", "", "", `"Europe/Berlin" differs from clock.time_zone "UTC"`},
		{"bad old zone", `{"upload": {"time_zone": "Mars/Olympus"}}`, "Local", "", "", "Mars/Olympus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate()
			if tc.problem != "" {
				if err == nil || !strings.Contains(err.Error(), "upload.time_zone") || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("Validate: %v, want upload.time_zone: ...%s...", err, tc.problem)
				}
				return
			}
			if err != nil && strings.Contains(err.Error(), "time_zone") {
				t.Fatalf("Validate: %v", err)
			}
			if c.Clock.TimeZone != tc.clock || c.Upload.TimeZone != tc.upload {
				t.Errorf("clock %q, upload %q; want %q, %q", c.Clock.TimeZone, c.Upload.TimeZone, tc.clock, tc.upload)
			}
			var got string
			for _, w := range c.Warnings() {
				if w.Field == "upload.time_zone" {
					got = w.Problem
				}
			}
			if tc.warning == "" && got != "" || !strings.Contains(got, tc.warning) {
				t.Errorf("warning %q, want one with %q", got, tc.warning)
			}
		})
	}
}

package config

import (
	"testing"

	"github.com/presscap/presscap/probe/internal/trigger"
)

// TestProfileOfKeyAndMatches: a key presses the profile that lists it, any
// other key (and no key) the first; the default device entries become the
// R400's two receivers with its five keys.
func TestProfileOfKeyAndMatches(t *testing.T) {
	c, err := Parse([]byte(`{"trigger": {"profiles": [
		{"name": "internet", "keys": ["KEY_PAGEDOWN"]},
		{"name": "phone", "keys": ["KEY_PAGEUP", "0x3f"]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[uint16]string{
		trigger.KeyPageUp: "phone", trigger.KeyF5: "phone", trigger.KeyPageDown: "internet",
		trigger.KeyDot: "internet", 0: "internet",
	} {
		if got := c.Trigger.ProfileOfKey(key); got != want {
			t.Errorf("ProfileOfKey(%s) = %q, want %q", trigger.KeyName(key), got, want)
		}
	}
	if got := DefaultConfig().Trigger.ProfileOfKey(trigger.KeyPageUp); got != "" {
		t.Errorf("without profiles ProfileOfKey = %q, want \"\"", got)
	}
	ms := DefaultConfig().Trigger.Matches()
	if len(ms) != 2 || ms[0].Vendor != 0x046d || ms[0].Product != 0xc52d || ms[1].Product != 0xc538 || len(ms[1].Keys) != 5 {
		t.Fatalf("default matches %+v, want the R400's 046d:c52d and 046d:c538 with five keys", ms)
	}
}

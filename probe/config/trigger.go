package config

import (
	"fmt"

	"github.com/presscap/presscap/probe/internal/trigger"
)

// Matches turns the device entries into the trigger watcher's matches;
// call it on a validated configuration, whose ids and key names parse.
func (t Trigger) Matches() []trigger.Match {
	var matches []trigger.Match
	for _, d := range t.Devices {
		m := trigger.Match{Name: d.Name}
		fmt.Sscanf(d.Vendor, "%x", &m.Vendor)
		fmt.Sscanf(d.Product, "%x", &m.Product)
		for _, k := range d.Keys {
			code, _ := trigger.KeyCode(k)
			m.Keys = append(m.Keys, code)
		}
		matches = append(matches, m)
	}
	return matches
}

// ProfileOfKey returns the name of the profile key presses: the one that
// lists it, else the first (the default); "" without profiles.
func (t Trigger) ProfileOfKey(key uint16) string {
	for _, p := range t.Profiles {
		for _, k := range p.Keys {
			if code, err := trigger.KeyCode(k); err == nil && code == key {
				return p.Name
			}
		}
	}
	if len(t.Profiles) > 0 {
		return t.Profiles[0].Name
	}
	return ""
}

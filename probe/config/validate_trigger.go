package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"time"

	"github.com/presscap/presscap/probe/internal/filenames"
	"github.com/presscap/presscap/probe/internal/trigger"
	"github.com/presscap/presscap/ringfs"
)

// hexRE is a USB vendor or product id.
var hexRE = regexp.MustCompile(`^[0-9a-fA-F]{1,4}$`)

func (t Trigger) validate() Errors {
	var es Errors
	for _, d := range t.windowDurations() {
		if d.v.D() > MaxDuration {
			es.Add(d.field, "%v is over the maximum of %v", d.v.D(), MaxDuration)
		}
	}
	if t.Before <= 0 {
		es.Add("before", "must be positive")
	}
	// After 0 ends the window at the press: [press-before, press).
	if t.After < 0 {
		es.Add("after", "must not be negative (0 ends the window at the press)")
	}
	switch t.Repeat {
	case RepeatExtend, RepeatSeparate, RepeatIgnore:
	default:
		es.Add("repeat", "%q is not one of extend, separate, ignore", t.Repeat)
	}
	if window, ok := t.window(); ok && t.Repeat == RepeatExtend && t.MaxWindow.D() < window {
		es.Add("max_window", "%v is shorter than before + after (%v)", t.MaxWindow.D(), window)
	}
	if !filepath.IsAbs(t.InputDir) {
		es.Add("input_dir", "%q is not an absolute path", t.InputDir)
	}
	checkPeriod(&es, "rescan", t.Rescan)
	if len(t.Devices) == 0 {
		es.Add("devices", "no device is accepted")
	}
	for i, d := range t.Devices {
		es.Under(fmt.Sprintf("devices[%d]", i), d.validate())
	}
	return append(es, t.validateProfiles()...)
}

// windowDurations are the durations the press window is computed from,
// whose overflow would wrap the window's ends; a profile's count with the
// longest of them.
func (t Trigger) windowDurations() []duration {
	var pb, pa Duration
	for _, p := range t.Profiles {
		pb, pa = max(pb, p.Before), max(pa, p.After)
	}
	return []duration{
		{"profiles[].before", pb, true},
		{"profiles[].after", pa, true},
		{"before", t.Before, true},
		{"after", t.After, true},
		{"max_window", t.MaxWindow, true},
	}
}

// window is before + after, and whether every window duration is at most
// MaxDuration (so that the sum cannot wrap).
func (t Trigger) window() (time.Duration, bool) {
	for _, d := range t.windowDurations() {
		if d.v.D() > MaxDuration {
			return 0, false
		}
	}
	return (t.Before + t.After).D(), true
}

func (d Device) validate() Errors {
	var es Errors
	if d.Vendor != "" && !hexRE.MatchString(d.Vendor) {
		es.Add("vendor", "%q is not a 4-digit hex USB id", d.Vendor)
	}
	if d.Product != "" && !hexRE.MatchString(d.Product) {
		es.Add("product", "%q is not a 4-digit hex USB id", d.Product)
	}
	if d.Vendor == "" && d.Product == "" && d.Name == "" && len(d.Keys) == 0 {
		es.Add("", "matches every input device (a keyboard would trigger); name a vendor, product, name or keys")
	}
	for j, k := range d.Keys {
		if _, err := trigger.KeyCode(k); err != nil {
			es.AddErr(fmt.Sprintf("keys[%d]", j), "unknown key", err)
		}
	}
	return es
}

// validateProfiles checks profiles: names fit file names, each key is one
// an accepted device may send and presses one profile only. Their exports
// name links, which Config checks (validateExports).
func (t Trigger) validateProfiles() Errors {
	var es Errors
	if len(t.Profiles) > MaxProfiles {
		es.Add("profiles", "%d profiles, at most %d (the acknowledgement counts them)", len(t.Profiles), MaxProfiles)
	}
	sendable := func(code uint16) bool {
		for _, d := range t.Devices {
			if len(d.Keys) == 0 {
				return true
			}
			for _, k := range d.Keys {
				if dc, err := trigger.KeyCode(k); err == nil && dc == code {
					return true
				}
			}
		}
		return false
	}
	names := map[string]bool{}
	keys := map[uint16]string{}
	for i, p := range t.Profiles {
		f := fmt.Sprintf("profiles[%d]", i)
		if err := filenames.CheckProfile(p.Name); err != nil {
			es.AddErr(f+".name", "not usable", err)
		}
		if names[p.Name] {
			es.Add(f+".name", "%q is used twice", p.Name)
		}
		names[p.Name] = true
		for j, k := range p.Keys {
			kf := fmt.Sprintf("%s.keys[%d]", f, j)
			code, err := trigger.KeyCode(k)
			switch {
			case err != nil:
				es.AddErr(kf, "unknown key", err)
			case !sendable(code):
				es.Add(kf, "%s is not among the keys of any trigger.devices entry", k)
			case keys[code] != "":
				es.Add(kf, "%s already presses profile %q", k, keys[code])
			default:
				keys[code] = p.Name
			}
		}
		if !p.inRange() {
			if p.Before < 0 || p.Before.D() > MaxDuration {
				es.Add(f+".before", "%v is not between 0 (trigger.before) and %v", p.Before.D(), MaxDuration)
			} else {
				es.Add(f+".after", "%v is not between 0 (trigger.after) and %v", p.After.D(), MaxDuration)
			}
			continue
		}
		before, after := t.Span(p)
		if t.Repeat == RepeatExtend && t.MaxWindow.D() < before+after {
			es.Add("max_window", "%v is shorter than profile %q's before + after (%v)", t.MaxWindow.D(), p.Name, before+after)
		}
	}
	return es
}

// inRange says whether the profile's before and after are between 0 and
// MaxDuration.
func (p Profile) inRange() bool {
	return p.Before >= 0 && p.Before.D() <= MaxDuration && p.After >= 0 && p.After.D() <= MaxDuration
}

// checkWindow checks the press windows against the history the ring
// holds: the trigger's before + after, and each profile's.
func (c Config) checkWindow() Errors {
	var es Errors
	// A window out of range is the trigger's problem.
	if window, ok := c.Trigger.window(); ok && c.Trigger.Before > 0 && c.Trigger.After >= 0 {
		if c.Ring.ExpectedMbps > 0 && c.Ring.Size >= ringfs.MinSize {
			if hist := c.History(); window > hist {
				es.Add("trigger.before", "before + after = %v exceeds the %v of history that ring.size %v holds at ring.expected_mbps %g",
					window, hist.Round(time.Second), c.Ring.Size, c.Ring.ExpectedMbps)
			}
		}
		if c.Ring.MaxAge > 0 && window > c.Ring.MaxAge.D() {
			es.Add("trigger.before", "before + after = %v exceeds ring.max_age %v", window, c.Ring.MaxAge.D())
		}
	}
	for i, p := range c.Trigger.Profiles {
		if before, after := c.Trigger.Span(p); p.inRange() && c.Ring.MaxAge > 0 && before+after > c.Ring.MaxAge.D() {
			es.Add(fmt.Sprintf("trigger.profiles[%d].before", i), "before + after = %v exceeds ring.max_age %v", before+after, c.Ring.MaxAge.D())
		}
	}
	return es
}

// Package filenames is the one place that says which names the probe gives
// the files of a saved window: the export writes them, and the upload
// sends only names it recognises, so that nothing else a customer leaves in
// the queue on their USB disk leaves the house.
package filenames

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// stampLayout is the press time in a name: UTC, to the millisecond.
const stampLayout = "20060102T150405.000Z"

// unsynced marks a stamp taken before the clock was synced.
const unsynced = "-unsynced"

// Stamp is the press time as it appears in file names, with "-unsynced"
// when the clock was not synced.
func Stamp(t time.Time, synced bool) string {
	s := t.UTC().Format(stampLayout)
	if !synced {
		s += unsynced
	}
	return s
}

// Base is "<host>_<stamp>", the start of every file of a window.
func Base(host string, t time.Time, synced bool) string {
	return host + "_" + Stamp(t, synced)
}

// WithProfile is base with the press's profile ("<base>_<profile>"), or
// base when the press had none (no profiles configured).
func WithProfile(base, profile string) string {
	if profile == "" {
		return base
	}
	return base + "_" + profile
}

// MaxProfile is the longest profile name.
const MaxProfile = 20

var profileRE = regexp.MustCompile(`^` + profilePat + `$`)

// profilePat is a profile name: lower-case letters, digits and '-', so
// that it never reads as the next field of a name.
const profilePat = `[a-z0-9][a-z0-9-]{0,19}`

// CheckProfile says whether name may name a profile.
func CheckProfile(name string) error {
	if !profileRE.MatchString(name) {
		return fmt.Errorf("%q is not a profile name (1 to %d lower-case letters, digits, '-'; starting with a letter or digit)", name, MaxProfile)
	}
	return nil
}

// MaxLabel is the longest label the provider may give a probe.
const MaxLabel = 40

// labelRE is a label: no '_', which separates the fields of a name.
var labelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]*$`)

// CheckLabel says why label (the provider's reference for a probe, from
// fleet/labels.json) cannot go into file names, or nil.
func CheckLabel(label string) error {
	if len(label) > MaxLabel || !labelRE.MatchString(label) {
		return fmt.Errorf("%q is not a label (1 to %d letters, digits, '.', '-'; starting with a letter or digit)", label, MaxLabel)
	}
	return nil
}

// Host is the host part of names: "<host>-<label>", or host without a
// label. It stays a host part as producedRE has it, so the upload sends
// labelled files too.
func Host(host, label string) string {
	if label == "" {
		return host
	}
	return host + "-" + label
}

// Capture is the name of one export's file: "<base>_<name>.<format>".
func Capture(base, name, format string) string { return base + "_" + name + "." + format }

// Manifest is the name of a window's manifest: "<base>_manifest.json".
func Manifest(base string) string { return base + "_manifest.json" }

// Report is the name of a window's capture report (a self-contained HTML
// page), uploaded with the captures, before the manifest.
func Report(base string) string { return base + "_report.html" }

// tail is what follows "<host>_" in every name Capture, Manifest and
// Report give (after the profile, if any), with an export name as the
// configuration allows it
// (letters, digits, '.', '-', '_'). Later kinds of files add an
// alternative here.
const tail = `[0-9]{8}T[0-9]{6}\.[0-9]{3}Z(` + unsynced + `)?(_` + profilePat + `)?_` +
	`([A-Za-z0-9][A-Za-z0-9._-]*\.(pcap|pcapng)|manifest\.json|report\.html)`

// producedRE matches every name the probe gives, with a host as the
// configuration allows it; tailRE the part after the host.
var (
	producedRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*_` + tail + `$`)
	tailRE     = regexp.MustCompile(`^` + tail + `$`)
)

// Produced says whether the probe gives files such a name.
func Produced(name string) bool { return producedRE.MatchString(name) }

// ProducedBy says whether name is one the probe gives (Produced) with one
// of hosts as its host part, alone or with a label (Host): a file named
// before the provider's label was learned or changed is the probe's too.
func ProducedBy(name string, hosts []string) bool {
	if !Produced(name) {
		return false
	}
	for _, h := range hosts {
		rest, ok := strings.CutPrefix(name, h)
		if h == "" || !ok {
			continue
		}
		if r, ok := strings.CutPrefix(rest, "_"); ok && tailRE.MatchString(r) {
			return true
		}
		if r, ok := strings.CutPrefix(rest, "-"); ok {
			if label, t, ok := strings.Cut(r, "_"); ok && CheckLabel(label) == nil && tailRE.MatchString(t) {
				return true
			}
		}
	}
	return false
}

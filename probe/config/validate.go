package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/presscap/presscap/internal/daytime"
	"github.com/presscap/presscap/internal/field"
	"github.com/presscap/presscap/internal/release"
	"github.com/presscap/presscap/probe/internal/capture"
	"github.com/presscap/presscap/probe/internal/filenames"
	"github.com/presscap/presscap/probe/internal/filter"
	"github.com/presscap/presscap/probe/internal/ports"
	"github.com/presscap/presscap/probe/internal/trigger"
	"github.com/presscap/presscap/ringfs"
)

// FieldError is one problem with one field, named by its JSON path.
type FieldError = field.Error

// Errors is every problem Validate found, in field order.
type Errors = field.Errors

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	hexRE  = regexp.MustCompile(`^[0-9a-fA-F]{1,4}$`)
)

const (
	// MinPeriod is the shortest polling or retry period (field.MinPeriod).
	MinPeriod = field.MinPeriod
	// MaxDuration bounds every duration, so that sums of them added to a
	// press time stay far from the int64 nanoseconds the ring's
	// timestamps are (about 292 years).
	MaxDuration = 10 * 365 * 24 * time.Hour
	// MinTokenLen and MinTokenDistinct rule out a status.token that is
	// long but guessable: one repeated character, 16 spaces, "abab...".
	MinTokenLen      = 16
	MinTokenDistinct = 10
)

// Validate checks everything that can be checked without the hardware:
// filters compile, durations are in range, before + after fits in the
// history the ring holds, names and paths are sane. Each section validates
// itself, naming its fields relative to it; Validate puts them under the
// section's key and adds what spans sections. It returns Errors, or nil.
//
// Problems that earlier versions accepted and that are harmless are not
// refused here but reported by Warnings (see Parse for those it corrects).
func (c Config) Validate() error {
	var es Errors
	if c.Hostname != "" && !nameRE.MatchString(c.Hostname) {
		es.Add("hostname", "%q is not usable in a file name (letters, digits, '.', '-', '_')", c.Hostname)
	}
	es.Under("network", c.Network.validate())
	es = append(es, c.checkLinks()...)
	es.Under("ring", c.Ring.validate())
	es.Under("trigger", c.Trigger.validate())
	es = append(es, c.checkWindow()...)
	if len(c.Exports) == 0 {
		es.Add("exports", "at least one export is needed")
	}
	es.Under("exports", c.validateExports(c.Exports))
	for i, p := range c.Trigger.Profiles {
		es.Under(fmt.Sprintf("trigger.profiles[%d].exports", i), c.validateExports(p.Exports))
	}
	es.Under("storage", c.Storage.validate())
	es = append(es, c.outputOverlaps(true)...)
	es.Under("clock", c.Clock.validate())
	if c.zoneConflict != "" {
		es.Add("upload.time_zone", "%q differs from clock.time_zone %q: one zone now serves upload.time, beeper.quiet and release.window; remove upload.time_zone (or set clock.time_zone to the zone meant)", c.zoneConflict, c.Clock.TimeZone)
	}
	es.Under("status", c.Status.validate())
	es.Under("release", c.Release.validate())
	// The sections other packages own name their fields under their key
	// themselves.
	for _, sec := range []struct {
		key string
		err error
	}{{"beeper", c.Beeper.Validate()}, {"leds", c.Leds.Validate()}, {"upload", c.Upload.Validate()}} {
		var fes Errors
		switch {
		case sec.err == nil:
		case errors.As(sec.err, &fes):
			es = append(es, fes...)
		default:
			es = append(es, &FieldError{Field: sec.key, Problem: sec.err.Error()})
		}
	}
	return es.Err()
}

// Warnings lists what this version's rules find wrong but harmless in a
// configuration an earlier version accepted: what Parse corrected, and
// what is kept as it is. A warning never stops the probe.
func (c Config) Warnings() Errors {
	es := append(Errors(nil), c.fixed...)
	for _, d := range c.durations() {
		if !d.window && d.v.D() > MaxDuration {
			es.Add(d.field, "%v is over %v: in effect never", d.v.D(), MaxDuration)
		}
	}
	// Not weighed against the history at ring.expected_mbps: that is an
	// average, and a quiet household's ring holds far longer.
	if need := c.NeededAge().D(); c.Ring.MaxAge == 0 {
		es.Add("ring.max_age", "0 keeps every packet the ring holds (about %v at ring.expected_mbps, longer when traffic is lower), more than any press can save (%v: the longest before + max_window)", c.History().Round(time.Second), need)
	} else if c.Ring.MaxAge.D() > need {
		es.Add("ring.max_age", "%v keeps more than any press can save (%v: the longest before + max_window)", c.Ring.MaxAge.D(), need)
	}
	es = append(es, c.outputOverlaps(false)...)
	es = append(es, c.Upload.Warnings()...)
	return es
}

// validate checks the section alone, naming fields relative to it
// ("ports[1].interface"), as every section's validate does; Validate adds
// the checks that span sections.
func (n Network) validate() Errors {
	var es Errors
	switch n.Mode {
	case ModeSingle:
		if len(n.Ports) > 0 {
			es.Add("ports", "only in inline or mirror mode (single mode captures links)")
		}
		return es
	case ModeInline:
		if len(n.Ports) != 2 {
			es.Add("ports", "inline mode bridges exactly two ports, %d given", len(n.Ports))
		}
	case ModeMirror:
		if len(n.Ports) == 0 {
			es.Add("ports", "mirror mode needs at least one capture port")
		}
	default:
		es.Add("mode", "%q is not one of inline, mirror, single", n.Mode)
		return es
	}
	names := map[string]int{}
	sides := map[string]bool{}
	for i, p := range n.Ports {
		f := fmt.Sprintf("ports[%d]", i)
		if problem := interfaceProblem(p.Interface); problem != "" {
			es.Add(f+".interface", "%s", problem)
		} else if p.Interface == ports.DefaultBridge {
			es.Add(f+".interface", "%q is the bridge the probe makes", p.Interface)
		}
		if j, dup := names[p.Interface]; dup {
			es.Add(f+".interface", "%q is network.ports[%d] already", p.Interface, j)
		}
		names[p.Interface] = i
		if p.Side != "" && !nameRE.MatchString(p.Side) {
			es.Add(f+".side", "%q is not usable in a file name (letters, digits, '.', '-', '_')", p.Side)
		}
		if n.Mode == ModeInline && sides[p.SideName()] {
			es.Add(f+".side", "%q names both sides of the bridge", p.SideName())
		}
		sides[p.SideName()] = true
	}
	// Sides, links and groups will share one namespace in exports[].link:
	// a side may not be another port's interface.
	for i, p := range n.Ports {
		if j, ok := names[p.Side]; ok && j != i {
			es.Add(fmt.Sprintf("ports[%d].side", i), "%q is network.ports[%d]'s interface", p.Side, j)
		}
	}
	return es
}

// interfaceProblem says why n is no interface name, or "".
func interfaceProblem(n string) string {
	switch {
	case n == "":
		return "is empty"
	case len(n) > 15 || n == "." || n == ".." || strings.ContainsAny(n, "/ \t\n:"):
		return fmt.Sprintf("%q is not an interface name", n)
	}
	return ""
}

// checkLinks checks links: single mode's, or that network.ports made
// them.
func (c Config) checkLinks() Errors {
	var es Errors
	switch n := c.Network; {
	case n.Mode == ModeSingle || len(n.Ports) == 0:
		es.Under("links", validateLinks(c.Links))
	case n.Mode != ModeInline && n.Mode != ModeMirror:
		// network.mode's problem: its ports make no links.
	case c.linksWithPorts:
		es.Add("links", "not allowed together with network.ports, which make the links (one per port, named after it)")
	case !slices.Equal(c.Links, n.portLinks()):
		es.Add("links", "are not the links network.ports make (build the configuration with Parse)")
	}
	return es
}

// validateLinks checks single mode's capture links.
func validateLinks(links []Link) Errors {
	var es Errors
	if len(links) == 0 {
		es.Add("", "at least one capture link is needed")
	}
	seen, ifaces := map[string]bool{}, map[string]bool{}
	for i, l := range links {
		f := fmt.Sprintf("[%d]", i)
		if problem := interfaceProblem(l.Interface); problem != "" {
			es.Add(f+".interface", "%s", problem)
		} else if ifaces[l.Interface] {
			// The capture opens each interface once and refuses a
			// second link on it.
			es.Add(f+".interface", "interface %q is listed twice (one link per interface)", l.Interface)
		}
		ifaces[l.Interface] = true
		n := l.LinkName()
		if n != "" && !nameRE.MatchString(n) {
			es.Add(f+".name", "%q is not usable in a file name", n)
		}
		if seen[n] {
			es.Add(f+".name", "link %q is listed twice", n)
		}
		seen[n] = true
	}
	return es
}

func (r Ring) validate() Errors {
	var es Errors
	if err := relPath(r.Dir, false); err != nil {
		es.AddErr("dir", "bad path", err)
	}
	// The ring refuses less at creation; the service would only ever
	// report a full disk.
	if r.Size < ringfs.MinSize {
		es.Add("size", "%v is too small (at least %v)", r.Size, Size(ringfs.MinSize))
	}
	if r.MaxAge < 0 {
		es.Add("max_age", "must not be negative")
	}
	if r.ExpectedMbps <= 0 {
		es.Add("expected_mbps", "must be positive")
	}
	if r.Snaplen != 0 && r.Snaplen < 64 {
		es.Add("snaplen", "%d is too small to hold the headers (at least 64, or 0 for whole packets)", r.Snaplen)
	}
	rulesOK := true
	for i, rule := range r.Rules {
		f := fmt.Sprintf("rules[%d]", i)
		if fld, problem := rule.Check(); problem != "" {
			if fld != "" {
				f += "." + fld
			}
			es.Add(f, "%s", problem)
			rulesOK = false
		} else if _, err := filter.NewMatcher(rule.Filter); err != nil {
			es.AddErr(f+".filter", "does not compile", err)
			rulesOK = false
		}
	}
	if len(r.Rules) > 0 && rulesOK && len(es) == 0 {
		if prog, _, err := capture.CompileRules(r.Rules, r.Snaplen); err != nil {
			es.AddErr("rules", "do not compile together", err)
		} else if err := capture.CheckProgram(prog); err != nil {
			es.AddErr("rules", "too long together", err)
		}
	}
	return es
}

// duration is one duration field; window marks those the press window is
// computed from, whose overflow would wrap the window's ends.
type duration struct {
	field  string
	v      Duration
	window bool
}

// durations are every duration field: the trigger's window ones and the
// rest, which Warnings bounds.
func (c Config) durations() []duration {
	var ds []duration
	for _, d := range c.Trigger.windowDurations() {
		ds = append(ds, duration{"trigger." + d.field, d.v, true})
	}
	return append(ds, []duration{
		{"ring.max_age", c.Ring.MaxAge, false},
		{"trigger.rescan", c.Trigger.Rescan, false},
		{"storage.retry", c.Storage.Retry, false},
		{"upload.retry.initial", c.Upload.Retry.Initial, false},
		{"upload.retry.max", c.Upload.Retry.Max, false},
		{"upload.connect_timeout", c.Upload.ConnectTimeout, false},
		{"release.check_interval", c.Release.CheckInterval, false},
		{"release.quiet_after_press", c.Release.QuietAfterPress, false},
		{"release.confirm_within", c.Release.ConfirmWithin, false},
	}...)
}

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

// checkPeriod checks a polling period. Parse raises one that earlier
// versions accepted (positive, under MinPeriod), so only a configuration
// built in code meets the lower bound here.
func checkPeriod(es *Errors, f string, d Duration) {
	switch {
	case d <= 0:
		es.Add(f, "must be positive")
	case d.D() < MinPeriod:
		es.Add(f, "%v is below the minimum of %v", d.D(), MinPeriod)
	}
}

// validateExports checks a list of exports (the top level's or a
// profile's); their links must be ones the configuration captures.
func (c Config) validateExports(exports []Export) Errors {
	var es Errors
	names := map[string]bool{}
	for i, e := range exports {
		f := fmt.Sprintf("[%d]", i)
		es.Under(f, e.validate())
		if names[e.Name] {
			es.Add(f+".name", "%q is used twice", e.Name)
		}
		names[e.Name] = true
		if e.Link != "" && len(c.LinksOf(e.Link)) == 0 {
			es.Add(f+".link", "%q is not a link name or a side of network.ports", e.Link)
		}
	}
	return es
}

func (e Export) validate() Errors {
	var es Errors
	if !nameRE.MatchString(e.Name) {
		es.Add("name", "%q is not usable in a file name (letters, digits, '.', '-', '_')", e.Name)
	}
	if e.Filter != "" { // empty keeps every packet
		if _, err := filter.NewMatcher(e.Filter); err != nil {
			es.AddErr("filter", "does not compile", err)
		}
	}
	switch e.Format {
	case "", "pcap", "pcapng":
	default:
		es.Add("format", "%q is not one of pcap, pcapng", e.Format)
	}
	return es
}

func (s Storage) validate() Errors {
	var es Errors
	if s.Label == "" && !s.FirstUSB && s.Device == "" && !s.FallbackPerm {
		es.Add("", "no way to find a disk: set label, first_usb, device or fallback_perm")
	}
	if len(s.Label) > 16 {
		es.Add("label", "%q is longer than an ext4 label (16 bytes)", s.Label)
	}
	if s.Device != "" && !filepath.IsAbs(s.Device) {
		es.Add("device", "%q is not an absolute path", s.Device)
	}
	for _, p := range []struct{ field, v string }{
		{"mount_point", s.MountPoint}, {"perm_dir", s.PermDir}, {"state_dir", s.StateDir},
		{"sys_block", s.SysBlock}, {"dev_dir", s.DevDir},
	} {
		if !filepath.IsAbs(p.v) || filepath.Clean(p.v) == "/" {
			es.Add(p.field, "%q is not an absolute path below /", p.v)
		}
	}
	if len(s.FSTypes) == 0 {
		es.Add("fs_types", "is empty")
	}
	for i, fs := range s.FSTypes {
		switch fs {
		case "ext4", "ext3", "ext2", "vfat", "exfat", "btrfs", "xfs", "f2fs":
		default:
			es.Add(fmt.Sprintf("fs_types[%d]", i), "%q is not a supported filesystem", fs)
		}
	}
	switch s.Output {
	case OutputQueue, OutputRoot:
	default:
		es.Add("output", "%q is not one of queue, root", s.Output)
	}
	if err := relPath(s.QueueDir, false); err != nil {
		es.AddErr("queue_dir", "bad path", err)
	}
	// "." is the storage root itself: the files land beside ring/.
	if err := relPath(s.SaveDir, true); err != nil {
		es.AddErr("save_dir", "bad path", err)
	}
	checkPeriod(&es, "retry", s.Retry)
	return es
}

// outputOverlaps compares ring.dir, storage.queue_dir and storage.save_dir
// as the disk sees them: cleaned, and without case (vfat folds it). With
// refusals it returns what could put the ring among the files of a press
// (uploaded, or removed with them) or a press's files into the ring's
// directory; otherwise what is harmless: an overlap with save_dir while
// the output is the queue (it is not written), or between the queue and
// the save dir (each only holds files the probe named).
func (c Config) outputOverlaps(refusals bool) Errors {
	var es Errors
	ring, queue, save := diskPath(c.Ring.Dir), diskPath(c.Storage.QueueDir), diskPath(c.Storage.SaveDir)
	if ring == "" || queue == "" || save == "" || ring == "." || queue == "." {
		return nil // a bad path, reported by its own check
	}
	toRoot := c.Storage.Output == OutputRoot
	if refusals && overlap(ring, queue) {
		es.Add("ring.dir", "%q and storage.queue_dir %q are the same directory or one holds the other: the ring's segments would be among the files to upload", c.Ring.Dir, c.Storage.QueueDir)
	}
	// The storage root as save dir holds ring/ as a sibling of the files.
	if save != "." && overlap(ring, save) {
		switch {
		case refusals && (toRoot || ring == save):
			es.Add("ring.dir", "%q and storage.save_dir %q are the same directory or one holds the other: a press's files would be mixed with the ring's segments", c.Ring.Dir, c.Storage.SaveDir)
		case !refusals && !toRoot && ring != save:
			es.Add("storage.save_dir", "%q overlaps ring.dir %q (unused while storage.output is %q)", c.Storage.SaveDir, c.Ring.Dir, c.Storage.Output)
		}
	}
	if !refusals && toRoot && save != "." && overlap(queue, save) {
		es.Add("storage.save_dir", "%q overlaps storage.queue_dir %q: files saved there may be uploaded or mixed with the queue", c.Storage.SaveDir, c.Storage.QueueDir)
	}
	return es
}

// diskPath is p cleaned and case-folded, or "" when it is not a path
// inside the storage root.
func diskPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return ""
	}
	p = filepath.Clean(p)
	if p == ".." || strings.HasPrefix(p, "../") {
		return ""
	}
	return strings.ToLower(p)
}

// overlap says whether cleaned paths a and b are the same or nested.
func overlap(a, b string) bool {
	return a == b || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/")
}

func (c Clock) validate() Errors {
	var es Errors
	switch c.Sync {
	case SyncGokrazy, SyncAdjtimex, SyncAlways, SyncNever:
	default:
		es.Add("sync", "%q is not one of gokrazy, adjtimex, always, never", c.Sync)
	}
	if _, err := c.Location(); err != nil {
		es.Add("time_zone", "%v (an IANA name such as \"Europe/Berlin\", \"UTC\" or \"Local\")", err)
	}
	return es
}

func (s Status) validate() Errors {
	var es Errors
	for i, a := range s.Listen {
		if err := checkListen(a); err != nil {
			es.AddErr(fmt.Sprintf("listen[%d]", i), "bad address", err)
		}
	}
	if p := tokenProblem(s.Token); p != "" {
		es.Add("token", "%s", p)
	}
	if s.RecentPresses < 0 {
		es.Add("recent_presses", "must not be negative")
	}
	return es
}

// tokenProblem says why a non-empty token is too easy to guess, or "".
func tokenProblem(tok string) string {
	if tok == "" {
		return ""
	}
	seen := map[rune]bool{}
	for _, r := range tok {
		seen[r] = true
	}
	switch n := utf8.RuneCountInString(tok); {
	case n < MinTokenLen:
		return fmt.Sprintf("is shorter than %d characters", MinTokenLen)
	case len(seen) < MinTokenDistinct:
		return fmt.Sprintf("has %d distinct characters, fewer than %d: too easy to guess", len(seen), MinTokenDistinct)
	}
	return ""
}

// Bounds of release.check_interval and release.confirm_within.
const (
	MinReleaseCheck  = time.Minute
	MinConfirmWithin = 30 * time.Second
	MaxConfirmWithin = time.Hour
)

// channelName is a release channel: one plain directory on the server.
var channelName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func (r Release) validate() Errors {
	var es Errors
	for i, k := range r.PublicKeys {
		if _, err := release.ParsePublicKey(k); err != nil {
			es.AddErr(fmt.Sprintf("public_keys[%d]", i), "bad key", err)
		}
	}
	if !channelName.MatchString(r.Channel) {
		es.Add("channel", "%q: want a plain directory name (letters, digits, '.', '_', '-'; e.g. \"stable\")", r.Channel)
	}
	if r.CheckInterval.D() < MinReleaseCheck {
		es.Add("check_interval", "%v is shorter than %v (each check is a connection to the server)", r.CheckInterval.D(), MinReleaseCheck)
	}
	if r.QuietAfterPress < 0 {
		es.Add("quiet_after_press", "must not be negative")
	}
	if _, _, err := daytime.ParseRange(r.Window); err != nil {
		es.AddErr("window", "bad window", err)
	}
	if d := r.ConfirmWithin.D(); d < MinConfirmWithin || d > MaxConfirmWithin {
		es.Add("confirm_within", "%v: want %v to %v (the new build's time to show it records before the old one boots again)", d, MinConfirmWithin, MaxConfirmWithin)
	}
	return es
}

// History is how far back the ring reaches at the expected rate. A rate
// so low that the span overflows a Duration reaches as far back as any
// Duration does.
func (c Config) History() time.Duration {
	if c.Ring.ExpectedMbps <= 0 {
		return 0
	}
	ns := float64(c.Ring.Size) * 8 / (c.Ring.ExpectedMbps * 1e6) * 1e9
	h := time.Duration(math.MaxInt64)
	if ns < float64(math.MaxInt64) {
		h = time.Duration(ns)
	}
	if c.Ring.MaxAge > 0 && c.Ring.MaxAge.D() < h {
		h = c.Ring.MaxAge.D()
	}
	return h
}

// relPath checks a directory inside the storage root, after cleaning
// ("./ring", "x/../ring" and "ring/" are "ring"); root allows "." itself.
func relPath(p string, root bool) error {
	clean := filepath.Clean(p)
	switch {
	case p == "":
		return errors.New("is empty")
	case filepath.IsAbs(p):
		return fmt.Errorf("%q must be relative to the storage root", p)
	case clean == ".." || strings.HasPrefix(clean, "../"):
		return fmt.Errorf("%q leaves the storage root", p)
	case clean == "." && !root:
		return fmt.Errorf("%q is the storage root itself, which holds the other directories", p)
	}
	return nil
}

func checkListen(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: bad port %q", a, port)
	}
	if host == "" || host == "private" || host == "localhost" {
		return nil
	}
	if net.ParseIP(host) == nil {
		return fmt.Errorf("%q: host must be an IP address, \"private\" or empty", a)
	}
	return nil
}

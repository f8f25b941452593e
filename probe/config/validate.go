package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/presscap/presscap/internal/field"
)

// FieldError is one problem with one field, named by its JSON path.
type FieldError = field.Error

// Errors is every problem Validate found, in field order.
type Errors = field.Errors

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

const (
	// MinPeriod is the shortest polling or retry period (field.MinPeriod).
	MinPeriod = field.MinPeriod
	// MaxDuration bounds every duration, so that sums of them added to a
	// press time stay far from the int64 nanoseconds the ring's
	// timestamps are (about 292 years).
	MaxDuration = 10 * 365 * 24 * time.Hour
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
	es.Under("tunnel", c.Tunnel.validate())
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
		{"tunnel.check_interval", c.Tunnel.CheckInterval, false},
		{"tunnel.max_duration", c.Tunnel.MaxDuration, false},
	}...)
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

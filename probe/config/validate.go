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

	"github.com/presscap/presscap/probe/capture"
	"github.com/presscap/presscap/probe/filter"
	"github.com/presscap/presscap/probe/trigger"
	"github.com/presscap/presscap/ringfs"
)

// FieldError is one problem with one field, named by its JSON path.
type FieldError struct {
	Field   string
	Problem string
	Err     error // the underlying error, if any
}

func (e *FieldError) Error() string {
	if e.Err != nil {
		return e.Field + ": " + e.Problem + ": " + e.Err.Error()
	}
	return e.Field + ": " + e.Problem
}

func (e *FieldError) Unwrap() error { return e.Err }

// Errors is every problem Validate found, in field order.
type Errors []*FieldError

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	hexRE  = regexp.MustCompile(`^[0-9a-fA-F]{1,4}$`)
)

// Validate checks everything that can be checked without the hardware:
// filters compile, durations are positive, before + after fits in the
// history the ring holds, names and paths are sane. It returns Errors, or
// nil.
func (c Config) Validate() error {
	var es Errors
	bad := func(field, format string, args ...any) {
		es = append(es, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	badErr := func(field, problem string, err error) {
		es = append(es, &FieldError{Field: field, Problem: problem, Err: err})
	}

	if c.Hostname != "" && !nameRE.MatchString(c.Hostname) {
		bad("hostname", "%q is not usable in a file name (letters, digits, '.', '-', '_')", c.Hostname)
	}

	// Links.
	if len(c.Links) == 0 {
		bad("links", "at least one capture link is needed")
	}
	linkNames := map[string]bool{}
	for i, l := range c.Links {
		f := fmt.Sprintf("links[%d]", i)
		if l.Interface == "" {
			bad(f+".interface", "is empty")
		} else if len(l.Interface) > 15 || strings.ContainsAny(l.Interface, "/ \t:") {
			bad(f+".interface", "%q is not an interface name", l.Interface)
		}
		n := l.LinkName()
		if n != "" && !nameRE.MatchString(n) {
			bad(f+".name", "%q is not usable in a file name", n)
		}
		if linkNames[n] {
			bad(f+".name", "link %q is listed twice", n)
		}
		linkNames[n] = true
	}

	// Ring.
	if err := relPath(c.Ring.Dir); err != nil {
		badErr("ring.dir", "bad path", err)
	}
	// The ring refuses less at creation; the service would only ever
	// report a full disk.
	const minRing = ringfs.MinSize
	if c.Ring.Size < minRing {
		bad("ring.size", "%v is too small (at least %v)", c.Ring.Size, Size(minRing))
	}
	if c.Ring.MaxAge < 0 {
		bad("ring.max_age", "must not be negative")
	}
	if c.Ring.ExpectedMbps <= 0 {
		bad("ring.expected_mbps", "must be positive")
	}
	if c.Ring.Snaplen != 0 && c.Ring.Snaplen < 64 {
		bad("ring.snaplen", "%d is too small to hold the headers (at least 64, or 0 for whole packets)", c.Ring.Snaplen)
	}
	for i, r := range c.Ring.Rules {
		f := fmt.Sprintf("ring.rules[%d]", i)
		if field, problem := r.Check(); problem != "" {
			if field != "" {
				f += "." + field
			}
			bad(f, "%s", problem)
		} else if _, err := filter.NewMatcher(r.Filter); err != nil {
			badErr(f+".filter", "does not compile", err)
		}
	}
	if len(c.Ring.Rules) > 0 && len(es) == 0 {
		if _, _, err := capture.CompileRules(c.Ring.Rules, c.Ring.Snaplen); err != nil {
			badErr("ring.rules", "do not compile together", err)
		}
	}

	// Trigger and window.
	t := c.Trigger
	if t.Before <= 0 {
		bad("trigger.before", "must be positive")
	}
	if t.After <= 0 {
		bad("trigger.after", "must be positive")
	}
	window := (t.Before + t.After).D()
	if t.Before > 0 && t.After > 0 {
		if c.Ring.ExpectedMbps > 0 && c.Ring.Size >= minRing {
			hist := c.History()
			if window > hist {
				bad("trigger.before", "before + after = %v exceeds the %v of history that ring.size %v holds at ring.expected_mbps %g",
					window, hist.Round(time.Second), c.Ring.Size, c.Ring.ExpectedMbps)
			}
		}
		if c.Ring.MaxAge > 0 && window > c.Ring.MaxAge.D() {
			bad("trigger.before", "before + after = %v exceeds ring.max_age %v", window, c.Ring.MaxAge.D())
		}
	}
	switch t.Repeat {
	case RepeatExtend, RepeatSeparate, RepeatIgnore:
	default:
		bad("trigger.repeat", "%q is not one of extend, separate, ignore", t.Repeat)
	}
	if t.Repeat == RepeatExtend && t.MaxWindow.D() < window {
		bad("trigger.max_window", "%v is shorter than before + after (%v)", t.MaxWindow.D(), window)
	}
	if !filepath.IsAbs(t.InputDir) {
		bad("trigger.input_dir", "%q is not an absolute path", t.InputDir)
	}
	if t.Rescan <= 0 {
		bad("trigger.rescan", "must be positive")
	}
	if len(t.Devices) == 0 {
		bad("trigger.devices", "no device is accepted")
	}
	for i, d := range t.Devices {
		f := fmt.Sprintf("trigger.devices[%d]", i)
		if d.Vendor != "" && !hexRE.MatchString(d.Vendor) {
			bad(f+".vendor", "%q is not a 4-digit hex USB id", d.Vendor)
		}
		if d.Product != "" && !hexRE.MatchString(d.Product) {
			bad(f+".product", "%q is not a 4-digit hex USB id", d.Product)
		}
		if d.Vendor == "" && d.Product == "" && d.Name == "" && len(d.Keys) == 0 {
			bad(f, "matches every input device (a keyboard would trigger); name a vendor, product, name or keys")
		}
		for j, k := range d.Keys {
			if _, err := trigger.KeyCode(k); err != nil {
				badErr(fmt.Sprintf("%s.keys[%d]", f, j), "unknown key", err)
			}
		}
	}

	// Exports.
	if len(c.Exports) == 0 {
		bad("exports", "at least one export is needed")
	}
	names := map[string]bool{}
	for i, e := range c.Exports {
		f := fmt.Sprintf("exports[%d]", i)
		if !nameRE.MatchString(e.Name) {
			bad(f+".name", "%q is not usable in a file name (letters, digits, '.', '-', '_')", e.Name)
		}
		if names[e.Name] {
			bad(f+".name", "%q is used twice", e.Name)
		}
		names[e.Name] = true
		if e.Filter != "" { // empty keeps every packet
			if _, err := filter.NewMatcher(e.Filter); err != nil {
				badErr(f+".filter", "does not compile", err)
			}
		}
		switch e.Format {
		case "", "pcap", "pcapng":
		default:
			bad(f+".format", "%q is not one of pcap, pcapng", e.Format)
		}
		if e.Link != "" && !linkNames[e.Link] {
			bad(f+".link", "%q is not a link name", e.Link)
		}
	}

	// Storage.
	s := c.Storage
	if s.Label == "" && !s.FirstUSB && s.Device == "" && !s.FallbackPerm {
		bad("storage", "no way to find a disk: set label, first_usb, device or fallback_perm")
	}
	if len(s.Label) > 16 {
		bad("storage.label", "%q is longer than an ext4 label (16 bytes)", s.Label)
	}
	if s.Device != "" && !filepath.IsAbs(s.Device) {
		bad("storage.device", "%q is not an absolute path", s.Device)
	}
	for _, p := range []struct{ field, v string }{
		{"storage.mount_point", s.MountPoint}, {"storage.perm_dir", s.PermDir}, {"storage.state_dir", s.StateDir},
		{"storage.sys_block", s.SysBlock}, {"storage.dev_dir", s.DevDir},
	} {
		if !filepath.IsAbs(p.v) || filepath.Clean(p.v) == "/" {
			bad(p.field, "%q is not an absolute path below /", p.v)
		}
	}
	if len(s.FSTypes) == 0 {
		bad("storage.fs_types", "is empty")
	}
	for i, fs := range s.FSTypes {
		switch fs {
		case "ext4", "ext3", "ext2", "vfat", "exfat", "btrfs", "xfs", "f2fs":
		default:
			bad(fmt.Sprintf("storage.fs_types[%d]", i), "%q is not a supported filesystem", fs)
		}
	}
	switch s.Output {
	case OutputQueue, OutputRoot:
	default:
		bad("storage.output", "%q is not one of queue, root", s.Output)
	}
	for _, p := range []struct{ field, v string }{{"storage.queue_dir", s.QueueDir}, {"storage.save_dir", s.SaveDir}} {
		if err := relPath(p.v); err != nil {
			badErr(p.field, "bad path", err)
		}
	}
	if s.QueueDir == c.Ring.Dir || s.SaveDir == c.Ring.Dir {
		bad("ring.dir", "%q is also an output directory", c.Ring.Dir)
	}
	if s.Retry <= 0 {
		bad("storage.retry", "must be positive")
	}

	// Clock.
	switch c.Clock.Sync {
	case SyncGokrazy, SyncAdjtimex, SyncAlways, SyncNever:
	default:
		bad("clock.sync", "%q is not one of gokrazy, adjtimex, always, never", c.Clock.Sync)
	}

	// Status.
	for i, a := range c.Status.Listen {
		if err := checkListen(a); err != nil {
			badErr(fmt.Sprintf("status.listen[%d]", i), "bad address", err)
		}
	}
	if c.Status.Token != "" && len(c.Status.Token) < 16 {
		bad("status.token", "is shorter than 16 characters")
	}
	if c.Status.RecentPresses < 0 {
		bad("status.recent_presses", "must not be negative")
	}

	// The sections other packages own.
	for _, sec := range []struct {
		key string
		err error
	}{{"beeper", c.Beeper.Validate()}, {"leds", c.Leds.Validate()}, {"upload", c.Upload.Validate()}} {
		if sec.err == nil {
			continue
		}
		// The sections name their own fields ("beeper.volume: ..."); keep
		// that, and prefix the key where they do not.
		msg := sec.err.Error()
		field, problem, ok := strings.Cut(msg, ": ")
		switch {
		case ok && strings.HasPrefix(field, sec.key+"."):
			es = append(es, &FieldError{Field: field, Problem: problem})
		case ok && !strings.ContainsAny(field, " \t\"") && field != "":
			es = append(es, &FieldError{Field: sec.key + "." + field, Problem: problem})
		default:
			es = append(es, &FieldError{Field: sec.key, Problem: msg})
		}
	}

	if len(es) == 0 {
		return nil
	}
	return es
}

// History is how far back the ring reaches at the expected rate.
func (c Config) History() time.Duration {
	if c.Ring.ExpectedMbps <= 0 {
		return 0
	}
	secs := float64(c.Ring.Size) * 8 / (c.Ring.ExpectedMbps * 1e6)
	h := time.Duration(secs * float64(time.Second))
	if c.Ring.MaxAge > 0 && c.Ring.MaxAge.D() < h {
		h = c.Ring.MaxAge.D()
	}
	return h
}

func relPath(p string) error {
	switch {
	case p == "":
		return errors.New("is empty")
	case filepath.IsAbs(p):
		return fmt.Errorf("%q must be relative to the storage root", p)
	case filepath.Clean(p) == "." || strings.HasPrefix(filepath.Clean(p), ".."):
		return fmt.Errorf("%q leaves the storage root", p)
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

package config

import "time"

// upgrade corrects, in a configuration just read, what earlier versions
// accepted and this version's rules refuse although a corrected value
// does what was meant: the probe still starts after an update, and says
// what it changed (Warnings). What is unsafe stays a refusal of Validate.
func (c *Config) upgrade() {
	var es Errors
	for _, p := range []struct {
		field string
		d     *Duration
	}{{"trigger.rescan", &c.Trigger.Rescan}, {"storage.retry", &c.Storage.Retry}} {
		if *p.d > 0 && p.d.D() < MinPeriod {
			es.Add(p.field, "%v is below the minimum of %v: using %v", p.d.D(), MinPeriod, MinPeriod)
			*p.d = Duration(MinPeriod)
		}
	}
	r := &c.Upload.Retry
	if r.Initial > 0 && r.Initial.D() < MinPeriod {
		es.Add("upload.retry.initial", "%v is below the minimum of %v: using %v", r.Initial, MinPeriod, MinPeriod)
		if r.Max >= r.Initial && r.Max.D() < MinPeriod {
			es.Add("upload.retry.max", "%v is below retry.initial's minimum of %v: using %v", r.Max, MinPeriod, MinPeriod)
			r.Max = Duration(MinPeriod)
		}
		r.Initial = Duration(MinPeriod)
	}
	// A token earlier versions accepted (16 bytes or more) that is too
	// easy to guess is not honoured: the trigger endpoint then takes only
	// gokrazy's password, and the probe records as before.
	if tok := c.Status.Token; len(tok) >= MinTokenLen {
		if p := tokenProblem(tok); p != "" {
			es.Add("status.token", "%s: ignored (POST /trigger takes gokrazy's password only)", p)
			c.Status.Token = ""
		}
	}
	es = append(es, c.oneTimeZone()...)
	c.fixed = es
}

// oneTimeZone moves an earlier version's upload.time_zone to
// clock.time_zone, which now serves upload.time, beeper.quiet and
// release.window alike, and gives the upload the one zone. A file that
// names two different zones is left for Validate to refuse: it used to
// mean the upload in one zone and the quiet hours in another, and
// either choice would move one of them by hours without a word.
func (c *Config) oneTimeZone() Errors {
	var es Errors
	old := c.Upload.TimeZone
	clockUnset := c.Clock.TimeZone == "" || c.Clock.TimeZone == "Local"
	_, bad := time.LoadLocation(old)
	switch {
	case old == "" || old == "Local" || old == c.Clock.TimeZone:
		// Nothing moves: "Local" is the default, and a configuration
		// written out holds both zones, equal.
	case bad != nil:
		return es // upload.Validate names it
	case clockUnset:
		es.Add("upload.time_zone", "deprecated: %q now set as clock.time_zone, the one zone of upload.time, beeper.quiet and release.window (move it there)", old)
		c.Clock.TimeZone = old
	default:
		c.zoneConflict = old
		return es
	}
	c.Upload.TimeZone = c.Clock.TimeZone
	return es
}

package config

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
	c.fixed = es
}

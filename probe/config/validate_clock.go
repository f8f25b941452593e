package config

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

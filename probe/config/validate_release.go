package config

import (
	"fmt"
	"regexp"
	"time"

	"github.com/presscap/presscap/internal/daytime"
	"github.com/presscap/presscap/internal/release"
)

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

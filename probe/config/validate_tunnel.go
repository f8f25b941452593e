package config

import "time"

// Bounds of tunnel.check_interval and tunnel.max_duration.
const (
	MinTunnelCheck    = 10 * time.Second
	MaxTunnelCheck    = time.Hour
	MinTunnelDuration = time.Minute
	MaxTunnelDuration = 24 * time.Hour
)

func (t Tunnel) validate() Errors {
	var es Errors
	if d := t.CheckInterval.D(); d < MinTunnelCheck || d > MaxTunnelCheck {
		es.Add("check_interval", "%v: want %v to %v (each check is a connection to the server; removing the file closes the tunnel within it)", d, MinTunnelCheck, MaxTunnelCheck)
	}
	if d := t.MaxDuration.D(); d < MinTunnelDuration || d > MaxTunnelDuration {
		es.Add("max_duration", "%v: want %v to %v", d, MinTunnelDuration, MaxTunnelDuration)
	}
	return es
}

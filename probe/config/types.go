// Package config is the probe's one JSON configuration: its types, the
// defaults that make every field optional (except the SFTP target), the
// validation that names the field and the problem, and where the file is
// looked for.
package config

import "github.com/presscap/presscap/internal/field"

// Duration and Size are internal/field's, the one definition every section
// and flag uses; named here for the image tool and the probe.
type (
	Duration = field.Duration
	Size     = field.Size
)

// Release is the fleet's update bundles (internal/release, issue 14).
type Release struct {
	// PublicKeys are the ed25519 keys (base64) whose signature on a
	// bundle's manifest is trusted; more than one during a key rotation.
	PublicKeys []string `json:"public_keys"`
	// Channel is the directory under <remote_dir>/fleet/release/ the
	// probe takes its releases from: a few probes can go first.
	Channel string `json:"channel"`
	// CheckInterval is how often the channel is read.
	CheckInterval Duration `json:"check_interval"`
	// QuietAfterPress is how long after a press the probe does not reboot
	// into a release (the customer may press again for the same fault).
	QuietAfterPress Duration `json:"quiet_after_press"`
	// Window is when a release that is not urgent may reboot the probe,
	// local time "HH:MM-HH:MM" (across midnight if the end is earlier).
	Window string `json:"window"`
	// ConfirmWithin is how long a newly installed build has after its boot
	// to show it is healthy before the probe boots the previous one again.
	ConfirmWithin Duration `json:"confirm_within"`
}

// Tunnel is the remote access the provider asks for with a file
// fleet/tunnel/<id> on the server (package probe/internal/fleet/tunnel).
type Tunnel struct {
	// Enabled lets the probe look for the file; off, it never opens one.
	Enabled bool `json:"enabled"`
	// CheckInterval is how often the probe looks for the file, and looks
	// again while the tunnel is open (removing it closes the tunnel).
	CheckInterval Duration `json:"check_interval"`
	// MaxDuration ends a tunnel the file still asks for: the same file
	// does not open it again.
	MaxDuration Duration `json:"max_duration"`
}

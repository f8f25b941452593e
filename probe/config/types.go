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
}

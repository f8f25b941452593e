package upload

import (
	"os"
	"slices"

	"github.com/presscap/presscap/probe/internal/identity"
)

// FileHosts are the host parts of the files the upload sends (each alone
// or with a label, see filenames.ProducedBy): host, the probe's name now,
// and those an earlier version or configuration gave files still queued
// (the configured hostname, the system's, presscap-<id8>). A file in the
// queue with another host part was not made by this probe.
func FileHosts(host, configured, fleetID string) []string {
	hosts := []string{host, configured}
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	if fleetID != "" {
		hosts = append(hosts, identity.ID{Value: fleetID}.DefaultHostname())
	}
	var out []string
	for _, h := range hosts {
		if h != "" && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

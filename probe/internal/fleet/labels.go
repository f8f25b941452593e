package fleet

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/presscap/presscap/probe/internal/filenames"
)

// Paths on the server, below remote_dir.
const (
	// FleetStatusDir holds one <id>.json report per probe.
	FleetStatusDir = "fleet/status"
	// LabelsFile, in fleet/, maps probe ids to the provider's reference.
	LabelsFile = "labels.json"
	// LabelsPath is LabelsFile below remote_dir.
	LabelsPath = "fleet/" + LabelsFile
	// ConfigDir holds <id>.json, a probe's configuration, else
	// default.json, every probe's.
	ConfigDir = "fleet/config"
	// DefaultConfigFile in ConfigDir serves probes without their own.
	DefaultConfigFile = "default.json"
	// EnrollDir holds <id>.pub, a probe's own public key waiting for the
	// provider to accept it (written with the enrolment account).
	EnrollDir = "fleet/enroll"
	// TunnelDir holds <id>, the provider's request for a reverse tunnel
	// to probe id (package fleet/tunnel).
	TunnelDir = "fleet/tunnel"
)

// ParseLabels reads fleet/labels.json: {"<id>": "<label>", ...}. A label
// goes into file names, so one that could not is an error naming the id.
func ParseLabels(b []byte) (map[string]string, error) {
	m := map[string]string{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("want {\"<probe id>\": \"<label>\", ...}: %w", err)
	}
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if err := filenames.CheckLabel(m[id]); err != nil {
			return nil, fmt.Errorf("label of %s: %w", id, err)
		}
	}
	return m, nil
}

package config

import (
	"encoding/json"
	"sort"
	"strings"
)

// serverRefused are the sections a configuration from the provider's
// server may not change: a wrong upload target or network mode would cut
// the probe off from the server that could put it right.
var serverRefused = []struct{ section, why string }{
	{"upload", "not accepted from the server until its files are signed with the release key (set it in the image or by a local edit)"},
	{"network", "not accepted from the server until its files are signed with the release key (set it in the image or by a local edit)"},
}

// serverRefusedFields are single fields the server may not change either
// (the rest of their sections it may, a release channel say):
// storage.state_dir holds the probe's SSH key (upload.key_file's default),
// so moving it would make a new key the server does not know, and the
// probe could never fetch the file that moves it back; the keys that decide
// which images the probe installs must not come from the server that
// offers the images.
var serverRefusedFields = []struct{ section, field, why string }{
	{"storage", "state_dir", "not accepted from the server: the probe's SSH key is there, a new place would lock it out of the server (set it in the image or by a local edit)"},
	{"release", "public_keys", "not accepted from the server: a key it names would let the server's own bundles in (set it in the image or by a local edit)"},
}

// CheckFromServer refuses a fleet file (see FleetPath) that names a field
// of a section the server may not change, naming each such field. It does
// not validate the rest: ParseLayers and Validate do.
func CheckFromServer(data []byte) error {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return describeJSONError(data, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var es Errors
	for _, k := range keys {
		for _, r := range serverRefusedFields {
			if !strings.EqualFold(k, r.section) {
				continue
			}
			sub, _ := m[k].(map[string]any)
			for sk := range sub {
				// encoding/json matches field names without case.
				if strings.EqualFold(sk, r.field) {
					es.Add(k+"."+sk, "%s", r.why)
				}
			}
		}
		for _, r := range serverRefused {
			if !strings.EqualFold(k, r.section) {
				continue
			}
			sub, _ := m[k].(map[string]any)
			if len(sub) == 0 {
				es.Add(k, "%s", r.why)
				continue
			}
			subKeys := make([]string, 0, len(sub))
			for sk := range sub {
				subKeys = append(subKeys, sk)
			}
			sort.Strings(subKeys)
			for _, sk := range subKeys {
				es.Add(k+"."+sk, "%s", r.why)
			}
		}
	}
	return es.Err()
}

package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLoadLayersImageFleetLocal: the image's file, the fleet file and a
// local edit stack over the defaults, later layers winning field by field
// and a list replaced whole; a missing layer is left out; an error names
// the layer's file and the field.
func TestLoadLayersImageFleetLocal(t *testing.T) {
	dir := t.TempDir()
	image, fleet, local := filepath.Join(dir, "image.json"), filepath.Join(dir, "fleet.json"), filepath.Join(dir, "local.json")
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(image, `{"hostname": "img", "trigger": {"before": "60s", "after": "20s"}, "ring": {"size": "1GiB"},
		"exports": [{"name": "all"}, {"name": "dns", "filter": "port 53"}]}`)
	write(fleet, `{"trigger": {"after": "30s"}, "exports": [{"name": "web", "filter": "port 443"}]}`)
	write(local, `{"trigger": {"before": "90s"}}`)
	c, used, err := LoadLayers([]string{image, filepath.Join(dir, "missing.json"), fleet, local})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(used, ",") != image+","+fleet+","+local {
		t.Errorf("used %q", used)
	}
	d := DefaultConfig()
	if c.Hostname != "img" || c.Trigger.Before.D() != 90*time.Second || c.Trigger.After.D() != 30*time.Second ||
		c.Ring.Size != 1<<30 || c.Trigger.Repeat != d.Trigger.Repeat || c.Trigger.MaxWindow != d.Trigger.MaxWindow {
		t.Errorf("effective config: hostname %q trigger %+v ring size %d", c.Hostname, c.Trigger, c.Ring.Size)
	}
	if len(c.Exports) != 1 || c.Exports[0].Name != "web" || c.Exports[0].Filter != "port 443" {
		t.Errorf("exports %+v, want the fleet file's list alone", c.Exports)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}

	write(fleet, `{"trigger": {"aftr": "30s"}}`)
	_, _, err = LoadLayers([]string{image, fleet, local})
	var es Errors
	if err == nil || !strings.Contains(err.Error(), fleet) || !errors.As(err, &es) || es[0].Field != "trigger.aftr" {
		t.Fatalf("error %v, want one naming %s and trigger.aftr", err, fleet)
	}
}

// TestLoadLayersUnreadable: a layer that exists but cannot be read is in
// used with the error, so that the service, finding the fleet layer
// there, starts without it (and reports) rather than not at all.
func TestLoadLayersUnreadable(t *testing.T) {
	dir := t.TempDir()
	image, fleet := filepath.Join(dir, "image.json"), filepath.Join(dir, "fleet.json")
	if err := os.WriteFile(image, []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(fleet, 0o755); err != nil { // read(2) fails: EISDIR
		t.Fatal(err)
	}
	_, used, err := LoadLayers([]string{image, fleet, filepath.Join(dir, "local.json")})
	if err == nil || !strings.Contains(err.Error(), fleet) {
		t.Fatalf("error %v, want one naming %s", err, fleet)
	}
	if strings.Join(used, ",") != image+","+fleet {
		t.Errorf("used %q, want the image's and the unreadable fleet layer", used)
	}
}

// TestCheckFromServer: a fleet file may not touch upload.* or network.*;
// each such field is named. Other sections pass.
func TestCheckFromServer(t *testing.T) {
	if err := CheckFromServer([]byte(`{"trigger": {"after": "30s"}, "exports": []}`)); err != nil {
		t.Fatal(err)
	}
	err := CheckFromServer([]byte(`{"upload": {"server": "evil:22", "host_key": "x"}, "network": {"mode": "inline"}, "hostname": "h"}`))
	var es Errors
	if !errors.As(err, &es) || len(es) != 3 || es[0].Field != "network.mode" || es[1].Field != "upload.host_key" || es[2].Field != "upload.server" {
		t.Fatalf("got %v, want network.mode, upload.host_key, upload.server refused", err)
	}
	if err := CheckFromServer([]byte(`{"Upload": {}}`)); err == nil || !strings.Contains(err.Error(), "Upload") {
		t.Fatalf("an empty upload section: %v", err)
	}
	// The release keys decide which bundles the probe installs: the
	// server offering the bundles may not name them.
	err = CheckFromServer([]byte(`{"release": {"public_keys": ["MCowBQYDK2VwAyEA"], "channel": "beta"}}`))
	if !errors.As(err, &es) || len(es) != 1 || es[0].Field != "release.public_keys" {
		t.Fatalf("got %v, want release.public_keys refused (and only it)", err)
	}
	// storage.state_dir holds the SSH key: moved, the probe would make a
	// new key the server refuses. Its other fields pass.
	if err := CheckFromServer([]byte(`{"storage": {"retry": "1m", "perm_dir": "/perm/x"}}`)); err != nil {
		t.Fatalf("storage without state_dir: %v", err)
	}
	err = CheckFromServer([]byte(`{"storage": {"retry": "1m", "State_Dir": "/perm/elsewhere"}}`))
	if !errors.As(err, &es) || len(es) != 1 || es[0].Field != "storage.State_Dir" {
		t.Fatalf("got %v, want storage.State_Dir refused", err)
	}
}

// TestLayerWithoutProfilesDropsTheImages: the image's profiles stay under
// a layer that changes something else, and give way to one that says what
// a press saves (exports, before, after) without profiles, so that such a
// file behaves as before profiles existed; a layer's own profiles replace
// them whole.
func TestLayerWithoutProfilesDropsTheImages(t *testing.T) {
	image := Layer{Name: "image", Data: []byte(`{"trigger": {"profiles": [
		{"name": "phone", "keys": ["KEY_PAGEUP"], "before": "2m", "exports": [{"name": "voip", "filter": "udp"}]},
		{"name": "internet", "keys": ["KEY_PAGEDOWN"]}]}}`)}
	for fleet, want := range map[string]string{
		`{"ring": {"size": "8GiB"}}`:                                              "phone internet",
		`{"trigger": {"devices": [{"vendor": "046d"}]}}`:                          "phone internet",
		`{"exports": [{"name": "phone1", "filter": "host 192.0.2.7"}]}`:           "",
		`{"trigger": {"before": "5m"}}`:                                           "",
		`{"trigger": {"after": "10s"}}`:                                           "",
		`{"trigger": {"profiles": []}}`:                                           "",
		`{"trigger": {"profiles": [{"name": "tv"}]}, "exports": [{"name": "x"}]}`: "tv",
	} {
		c, err := ParseLayers([]Layer{image, {Name: "fleet", Data: []byte(fleet)}})
		if err != nil {
			t.Fatalf("%s: %v", fleet, err)
		}
		var names []string
		for _, p := range c.Trigger.Profiles {
			names = append(names, p.Name)
		}
		if got := strings.Join(names, " "); got != want {
			t.Errorf("image + %s: profiles %q, want %q", fleet, got, want)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("image + %s: %v", fleet, err)
		}
	}
}

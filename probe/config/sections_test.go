package config

import (
	"strings"
	"testing"
	"time"
)

// TestSectionsValidateThemselves: each section's validate names its fields
// relative to the section, so the same section is checked wherever the
// configuration puts it (an export at the top level or in a profile).
// Each case is a section with one thing wrong and the error it must give.
func TestSectionsValidateThemselves(t *testing.T) {
	d := DefaultConfig()
	inline := func(a, b Port) Network { return Network{Mode: ModeInline, Ports: []Port{a, b}} }
	for _, tc := range []struct {
		name  string
		errs  Errors
		field string
		want  string
	}{
		{"network mode", Network{Mode: "bridge"}.validate(), "mode", `"bridge" is not one of inline`},
		{"network single with ports", Network{Mode: ModeSingle, Ports: []Port{{Interface: "eth0"}}}.validate(), "ports", "only in inline or mirror mode"},
		{"network inline one port", Network{Mode: ModeInline, Ports: []Port{{Interface: "eth0"}}}.validate(), "ports", "exactly two ports, 1 given"},
		{"network mirror no port", Network{Mode: ModeMirror}.validate(), "ports", "at least one capture port"},
		{"network bridge as port", inline(Port{Interface: "eth0"}, Port{Interface: "br0"}).validate(), "ports[1].interface", "the bridge the probe makes"},
		{"network port twice", inline(Port{Interface: "eth0"}, Port{Interface: "eth0"}).validate(), "ports[1].interface", "is network.ports[0] already"},
		{"network bad side", inline(Port{Interface: "eth0", Side: "a b"}, Port{Interface: "eth1"}).validate(), "ports[0].side", "not usable in a file name"},
		{"network one side twice", inline(Port{Interface: "eth0", Side: "lan"}, Port{Interface: "eth1", Side: "lan"}).validate(), "ports[1].side", "names both sides"},
		{"network side is an interface", inline(Port{Interface: "eth0", Side: "eth1"}, Port{Interface: "eth1", Side: "phone"}).validate(), "ports[0].side", "network.ports[1]'s interface"},
		{"links none", validateLinks(nil), "", "at least one capture link"},
		{"links interface", validateLinks([]Link{{Interface: "eth0"}, {Interface: "a/b"}}), "[1].interface", "not an interface name"},
		{"links name twice", validateLinks([]Link{{Interface: "eth0", Name: "x"}, {Interface: "eth1", Name: "x"}}), "[1].name", `link "x" is listed twice`},
		{"ring dir", Ring{Dir: "/ring", Size: d.Ring.Size, ExpectedMbps: 1}.validate(), "dir", "relative to the storage root"},
		{"ring size", Ring{Dir: "ring", Size: 1 << 20, ExpectedMbps: 1}.validate(), "size", "1MiB is too small"},
		{"ring rate", Ring{Dir: "ring", Size: d.Ring.Size}.validate(), "expected_mbps", "must be positive"},
		{"ring rule", Ring{Dir: "ring", Size: d.Ring.Size, ExpectedMbps: 1, Rules: []RingRule{{Filter: "udp portrange 9-"}}}.validate(), "rules[0].filter", "does not compile"},
		{"trigger before", func() Trigger { t := d.Trigger; t.Before = 0; return t }().validate(), "before", "must be positive"},
		{"trigger before overflow", func() Trigger { t := d.Trigger; t.Before = Duration(MaxDuration + 1); return t }().validate(), "before", "over the maximum"},
		{"trigger profile overflow", func() Trigger {
			t := d.Trigger
			t.Profiles = []Profile{{Name: "tv", After: Duration(MaxDuration + 1)}}
			return t
		}().validate(), "profiles[].after", "over the maximum"},
		{"trigger rescan", func() Trigger { t := d.Trigger; t.Rescan = Duration(time.Millisecond); return t }().validate(), "rescan", "below the minimum of 100ms"},
		{"trigger device", func() Trigger { t := d.Trigger; t.Devices = []Device{{Vendor: "x"}}; return t }().validate(), "devices[0].vendor", "4-digit hex"},
		{"trigger profile key", func() Trigger {
			t := d.Trigger
			t.Profiles = []Profile{{Name: "tv", Keys: []string{"KEY_A"}}}
			return t
		}().validate(), "profiles[0].keys[0]", "not among the keys"},
		{"trigger profile span", func() Trigger {
			t := d.Trigger
			t.Profiles = []Profile{{Name: "tv", Before: Duration(time.Hour)}}
			return t
		}().validate(), "max_window", `profile "tv"'s before + after`},
		{"device any", Device{}.validate(), "", "matches every input device"},
		{"device key", Device{Keys: []string{"KEY_NOPE"}}.validate(), "keys[0]", "unknown key"},
		{"export name", Export{Name: "a/b"}.validate(), "name", "not usable in a file name"},
		{"export filter", Export{Name: "a", Filter: "tcp port"}.validate(), "filter", "does not compile"},
		{"export format", Export{Name: "a", Format: "erf"}.validate(), "format", "not one of pcap, pcapng"},
		{"exports twice", d.validateExports([]Export{{Name: "a"}, {Name: "a"}}), "[1].name", "used twice"},
		{"exports link", d.validateExports([]Export{{Name: "a", Link: "wan"}}), "[0].link", `"wan" is not a link name`},
		{"storage no disk", func() Storage { s := d.Storage; s.Label, s.FirstUSB = "", false; return s }().validate(), "", "no way to find a disk"},
		{"storage fs type", func() Storage { s := d.Storage; s.FSTypes = []string{"ntfs"}; return s }().validate(), "fs_types[0]", "not a supported filesystem"},
		{"storage queue dir", func() Storage { s := d.Storage; s.QueueDir = "."; return s }().validate(), "queue_dir", "the storage root itself"},
		{"storage retry", func() Storage { s := d.Storage; s.Retry = -1; return s }().validate(), "retry", "must be positive"},
		{"clock sync", Clock{Sync: "ntp"}.validate(), "sync", "not one of gokrazy"},
		{"clock zone", Clock{Sync: SyncNever, TimeZone: "Mars/Olympus"}.validate(), "time_zone", "IANA name"},
		{"status listen", Status{Listen: []string{"private:99999"}}.validate(), "listen[0]", "bad port"},
		{"status token", Status{Token: strings.Repeat("ab", 10)}.validate(), "token", "2 distinct characters"},
		{"status recent", Status{RecentPresses: -1}.validate(), "recent_presses", "must not be negative"},
		{"release key", Release{PublicKeys: []string{"AAAA"}}.validate(), "public_keys[0]", "bad key"},
		{"release channel", func() Release { r := d.Release; r.Channel = "../x"; return r }().validate(), "channel", "plain directory name"},
		{"release window", func() Release { r := d.Release; r.Window = "3-5"; return r }().validate(), "window", "bad window"},
		{"tunnel check", Tunnel{CheckInterval: Duration(2 * time.Hour), MaxDuration: d.Tunnel.MaxDuration}.validate(), "check_interval", "want 10s to 1h0m0s"},
		{"tunnel duration", Tunnel{CheckInterval: d.Tunnel.CheckInterval}.validate(), "max_duration", "want 1m0s to 24h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, e := range tc.errs {
				if e.Field == tc.field && strings.Contains(e.Error(), tc.want) {
					return
				}
			}
			t.Errorf("validate = %v\nwant field %q: ...%s...", tc.errs, tc.field, tc.want)
		})
	}
}

// TestValidateNamesSectionFields: Validate puts each section's relative
// names under the section's key, the whole path down to the element.
func TestValidateNamesSectionFields(t *testing.T) {
	c, err := Parse([]byte(`{"network": {"mode": "inline", "ports": [{"interface": "eth0"}, {"interface": "br0"}]},
		"trigger": {"profiles": [{"name": "tv", "exports": [{"name": "x", "format": "erf"}]}]},
		"storage": {"fs_types": ["ext4", "ntfs"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	if es, ok := c.Validate().(Errors); ok {
		for _, e := range es {
			got[e.Field] = true
		}
	}
	for _, f := range []string{"network.ports[1].interface", "trigger.profiles[0].exports[0].format", "storage.fs_types[1]"} {
		if !got[f] {
			t.Errorf("Validate names no %s; it names %v", f, got)
		}
	}
}

package config

import (
	"strings"
	"testing"
)

// TestCheckDHCP: a network mode that would take the image's DHCP
// interface away from it is refused, naming the field; one that keeps it
// is accepted.
func TestCheckDHCP(t *testing.T) {
	inline := Network{Mode: ModeInline, Ports: []Port{{Interface: "eth0"}, {Interface: "eth1"}}}
	mirror := Network{Mode: ModeMirror, Ports: []Port{{Interface: "eth1"}}}
	single := Network{Mode: ModeSingle}
	for _, tc := range []struct {
		n    Network
		dhcp string
		want string // "" for accepted
	}{
		{inline, "br0", ""},
		{inline, "", ""},
		{inline, "wlan0", ""},
		{inline, "eth0", `network.ports[0].interface: "eth0" is where the image's DHCP client runs (its -interface): inline mode puts it into the bridge br0`},
		{inline, "eth1", `network.ports[1].interface: "eth1" is where`},
		{mirror, "eth0", ""},
		{mirror, "eth1", `network.ports[0].interface: "eth1" is where the image's DHCP client runs (its -interface): a mirror port carries no address`},
		{mirror, "br0", `network.mode: "mirror": the image's DHCP client runs on br0 (its -interface), which only inline mode makes`},
		{single, "eth0", ""},
		{single, "br0", `network.mode: "single": the image's DHCP client runs on br0`},
	} {
		err := tc.n.CheckDHCP(tc.dhcp)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s over %v with DHCP on %q: %v", tc.n.Mode, tc.n.Ports, tc.dhcp, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s over %v with DHCP on %q: %v, want %q", tc.n.Mode, tc.n.Ports, tc.dhcp, err, tc.want)
		}
	}
}

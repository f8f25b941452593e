package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/image/internal/gokconfig"
	probeconfig "github.com/presscap/presscap/probe/config"
)

// TestShippedInstances: every instance's probe configuration fits its
// DHCP client, and the Pi's, the image shipped to customers, is inline
// between the router (onboard eth0) and the device (the USB adapter's
// eth1), with the probe's address on the bridge.
func TestShippedInstances(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("..", "gokrazy", "*", "config.json"))
	if err != nil || len(dirs) < 3 {
		t.Fatalf("instances: %q %v", dirs, err)
	}
	for _, p := range dirs {
		cfg, err := gokconfig.Load(filepath.Dir(p))
		if err != nil {
			t.Fatal(err)
		}
		pc, err := probeConfig(cfg)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if err := pc.Validate(); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		if ws := pc.Warnings(); len(ws) > 0 {
			t.Errorf("%s: warnings: %v", p, ws)
		}
		if err := pc.Network.CheckDHCP(cfg.DHCPInterface()); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		if filepath.Base(cfg.Dir) != "presscap" {
			continue
		}
		if got := fmt.Sprintf("%s %v %s", pc.Network.Mode, pc.Network.Ports, cfg.DHCPInterface()); got != "inline [{eth0 router} {eth1 device}] br0" {
			t.Errorf("the Pi image: mode, ports and DHCP interface %s, want inline [{eth0 router} {eth1 device}] br0", got)
		}
		if pc.Network.RecordOwn {
			t.Error("the Pi image records its own traffic")
		}
		checkButtons(t, pc)
	}
	if probeconfig.DHCPEnv != "PRESSCAP_DHCP_INTERFACE" {
		t.Errorf("the probe reads %s, the image's init sets PRESSCAP_DHCP_INTERFACE", probeconfig.DHCPEnv)
	}
}

// checkButtons: the Pi image gives the R400's buttons the meaning
// (phone, internet, tv, other, in the order of the keys' positions), each
// of the R400's keys presses its own profile, and the ring keeps no more
// than the longest profile can save.
func checkButtons(t *testing.T, pc probeconfig.Config) {
	t.Helper()
	tr := pc.Trigger
	want := []struct {
		name, keys, before, after, exports string
	}{
		{"phone", "[KEY_PAGEUP]", "2m0s", "30s", "voip"},
		{"internet", "[KEY_PAGEDOWN]", "1m0s", "1m0s", "all"},
		{"tv", "[KEY_F5 KEY_ESC]", "1m0s", "1m0s", "all"},
		{"other", "[KEY_DOT]", "1m0s", "30s", "all"},
	}
	if len(tr.Profiles) != len(want) {
		t.Fatalf("the Pi image has %d profiles, want %d", len(tr.Profiles), len(want))
	}
	for i, w := range want {
		p := tr.Profiles[i]
		b, a := tr.Span(p)
		es := pc.Exports
		if len(p.Exports) > 0 {
			es = p.Exports
		}
		var names []string
		for _, e := range es {
			names = append(names, e.Name)
		}
		got := fmt.Sprintf("%s %v %v %v %s", p.Name, p.Keys, b, a, strings.Join(names, ","))
		if exp := fmt.Sprintf("%s %s %s %s %s", w.name, w.keys, w.before, w.after, w.exports); got != exp {
			t.Errorf("profile %d: %s, want %s", i, got, exp)
		}
	}
	listed := map[string]bool{}
	for _, p := range tr.Profiles {
		for _, k := range p.Keys {
			listed[k] = true
		}
	}
	for _, d := range tr.Devices {
		for _, k := range d.Keys {
			if !listed[k] {
				t.Errorf("%s of %s:%s is in no profile", k, d.Vendor, d.Product)
			}
		}
	}
	if got, want := pc.Ring.MaxAge.D(), 2*time.Minute+pc.Trigger.MaxWindow.D(); got != want {
		t.Errorf("the Pi image keeps %v, want the longest before + max_window = %v", got, want)
	}
}

package main

import (
	"fmt"
	"path/filepath"
	"testing"

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
	}
	if probeconfig.DHCPEnv != "PRESSCAP_DHCP_INTERFACE" {
		t.Errorf("the probe reads %s, the image's init sets PRESSCAP_DHCP_INTERFACE", probeconfig.DHCPEnv)
	}
}

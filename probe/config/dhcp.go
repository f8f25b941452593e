package config

import (
	"fmt"

	"github.com/presscap/presscap/probe/internal/ports"
)

// DHCPEnv is the variable in which the image's init tells the probe the
// interface gokrazy's DHCP client runs on (its -interface flag); empty or
// unset when the image runs none or the probe runs elsewhere.
const DHCPEnv = "PRESSCAP_DHCP_INTERFACE"

// CheckDHCP refuses a network section that contradicts the interface the
// image's DHCP client runs on (dhcp, "" for none or unknown): inline mode
// would put that interface into the bridge, mirror mode would capture on
// it without an address, and a client on the bridge needs inline mode to
// make the bridge. Each would leave the probe without its address (NTP,
// status page, upload) until the image changes, so a local or fleet
// configuration doing so is refused before it is applied.
func (n Network) CheckDHCP(dhcp string) error {
	if dhcp == "" {
		return nil
	}
	var es Errors
	if n.Mode != ModeSingle {
		for i, p := range n.Ports {
			if p.Interface != dhcp {
				continue
			}
			f := fmt.Sprintf("network.ports[%d].interface", i)
			if n.Mode == ModeInline {
				es.Add(f, "%q is where the image's DHCP client runs (its -interface): inline mode puts it into the bridge %s and the probe would lose its address; an inline image runs the DHCP client on %s", dhcp, ports.DefaultBridge, ports.DefaultBridge)
			} else {
				es.Add(f, "%q is where the image's DHCP client runs (its -interface): a mirror port carries no address, so the probe would lose its own", dhcp)
			}
		}
	}
	if dhcp == ports.DefaultBridge && n.Mode != ModeInline {
		es.Add("network.mode", "%q: the image's DHCP client runs on %s (its -interface), which only inline mode makes, so the probe would have no address; this image needs inline mode", n.Mode, dhcp)
	}
	return es.Err()
}

// Package ports brings the probe's network ports into the configured mode
// over netlink: a transparent kernel bridge over two ports (inline), ports
// that only listen (mirror), or nothing changed (single). It also watches
// the ports' link state, so that link loss on either side can be reported.
//
// The bridge is the kernel's: once set up it forwards whether or not the
// probe runs, and setting it up again changes nothing that would interrupt
// forwarding. Everything works in the network namespace of the calling
// thread (the probe has only one).
package ports

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Modes.
const (
	Inline = "inline" // a transparent bridge over two ports
	Mirror = "mirror" // ports that receive a copy of the traffic
	Single = "single" // capture the management port; nothing is changed
)

// DefaultBridge is the bridge's name in inline mode; gokrazy's DHCP client
// is pointed at it (-interface) so the probe has an address on the line.
const DefaultBridge = "br0"

// The group addresses 01:80:c2:00:00:0X a transparent bridge forwards, as
// bits of the bridge's group_fwd_mask (bit X). STP (0), PAUSE (1) and LACP
// (2) are link-local to the cable and stay refused, as the kernel insists.
const (
	fwdEAPOL = 1 << 0x03 // 802.1X, which some ISPs require on the WAN
	fwdLLDP  = 1 << 0x0e // LLDP, which phones use for their voice VLAN
	// GroupFwdMask is what the bridge forwards beyond ordinary frames.
	GroupFwdMask = fwdEAPOL | fwdLLDP
)

// DefaultAgeing is the kernel's own MAC ageing time (300 s), in the
// centiseconds netlink speaks; it is set again on an existing bridge in
// case something changed it.
const DefaultAgeing = 300 * 100

// Setup is the configured mode.
type Setup struct {
	Mode string
	// Ports are the two bridged interfaces (inline) or the capture
	// interfaces (mirror); unused in single mode.
	Ports []string
	// Bridge names the bridge (inline); empty means DefaultBridge.
	Bridge string
}

// BridgeName returns the bridge's name.
func (s Setup) BridgeName() string {
	if s.Bridge != "" {
		return s.Bridge
	}
	return DefaultBridge
}

// Check reports what makes the setup impossible to apply.
func (s Setup) Check() error {
	switch s.Mode {
	case Single:
		return nil
	case Inline:
		if len(s.Ports) != 2 {
			return fmt.Errorf("inline mode bridges exactly two ports, got %d", len(s.Ports))
		}
	case Mirror:
		if len(s.Ports) == 0 {
			return errors.New("mirror mode needs at least one port")
		}
	default:
		return fmt.Errorf("mode %q is not one of inline, mirror, single", s.Mode)
	}
	seen := map[string]bool{}
	for _, p := range append([]string{s.BridgeName()}, s.Ports...) {
		if err := checkName(p); err != nil {
			return err
		}
		if seen[p] {
			return fmt.Errorf("interface %q is named twice", p)
		}
		seen[p] = true
	}
	return nil
}

// checkName refuses what cannot be an interface name, before it reaches
// a path under /proc/sys.
func checkName(n string) error {
	if n == "" || len(n) > 15 || n == "." || n == ".." || strings.ContainsAny(n, "/ \t\n:") {
		return fmt.Errorf("%q is not an interface name", n)
	}
	return nil
}

// Apply brings the ports into the mode. It is idempotent: on a bridge
// that already exists it only corrects what differs, so a restarted probe
// never interrupts forwarding. A port that is missing is an error (the
// others are set up all the same); Watch applies again when it appears.
func Apply(s Setup) error {
	if err := s.Check(); err != nil {
		return err
	}
	switch s.Mode {
	case Inline:
		return applyInline(s)
	case Mirror:
		var errs []error
		for _, p := range s.Ports {
			if err := listenOnly(p, true); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	return nil
}

func applyInline(s Setup) error {
	name := s.BridgeName()
	br, err := ensureBridge(name, s.Ports)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range s.Ports {
		if err := listenOnly(p, false); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := enslave(p, br); err != nil {
			errs = append(errs, err)
		}
	}
	// The bridge comes up last, with its ports in place: it is then
	// forwarding at once (STP off, no forward delay).
	if err := netlink.LinkSetUp(br); err != nil {
		errs = append(errs, fmt.Errorf("bridge %s up: %w", name, err))
	}
	return errors.Join(errs...)
}

// ensureBridge creates the bridge if it does not exist and sets its
// options either way.
func ensureBridge(name string, ports []string) (netlink.Link, error) {
	l, err := netlink.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		attrs := netlink.NewLinkAttrs()
		attrs.Name = name
		// A fixed address (the first port's, the Pi's onboard one) keeps
		// the probe's DHCP lease when the USB adapter leaves the bridge;
		// by default the bridge takes its lowest port address.
		if p, err := netlink.LinkByName(ports[0]); err == nil {
			attrs.HardwareAddr = p.Attrs().HardwareAddr
		}
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
			return nil, fmt.Errorf("create bridge %s: %w", name, err)
		}
		if l, err = netlink.LinkByName(name); err != nil {
			return nil, fmt.Errorf("bridge %s: %w", name, err)
		}
	case err != nil:
		return nil, fmt.Errorf("bridge %s: %w", name, err)
	case l.Type() != "bridge":
		return nil, fmt.Errorf("%s exists and is a %s, not a bridge", name, l.Type())
	}
	if err := setBridgeOptions(l.Attrs().Index); err != nil {
		return nil, fmt.Errorf("bridge %s: %w", name, err)
	}
	// The bridge's own netfilter hooks (CONFIG_BRIDGE_NETFILTER=y in
	// gokrazy's kernel) would pass every forwarded IP packet through
	// iptables: off, the frames cross untouched. Absent unless built in
	// or loaded.
	for _, f := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"} {
		if err := writeSysctl(filepath.Join("/proc/sys/net/bridge", f), "0"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return l, nil
}

// setBridgeOptions sets what makes the bridge transparent. vishvananda's
// Bridge type lacks STP state and forward delay, so the options go as one
// raw RTM_NEWLINK each. STP goes first: the kernel refuses a forward
// delay of 0 while STP is on.
func setBridgeOptions(index int) error {
	steps := []struct {
		what  string
		attrs func(data *nl.RtAttr)
		// absent: a kernel without the feature refuses the attribute
		// (EOPNOTSUPP), and then it cannot be on either.
		absent bool
	}{
		{"STP off", func(d *nl.RtAttr) {
			d.AddRtAttr(unix.IFLA_BR_STP_STATE, nl.Uint32Attr(0))
		}, false},
		{"transparent options", func(d *nl.RtAttr) {
			d.AddRtAttr(unix.IFLA_BR_FORWARD_DELAY, nl.Uint32Attr(0))
			d.AddRtAttr(unix.IFLA_BR_AGEING_TIME, nl.Uint32Attr(DefaultAgeing))
			d.AddRtAttr(unix.IFLA_BR_GROUP_FWD_MASK, nl.Uint16Attr(GroupFwdMask))
			// Snooping would stop a multicast stream (IPTV) at the
			// bridge once it believed no one behind it listened.
			d.AddRtAttr(unix.IFLA_BR_MCAST_SNOOPING, nl.Uint8Attr(0))
			d.AddRtAttr(unix.IFLA_BR_NF_CALL_IPTABLES, nl.Uint8Attr(0))
			d.AddRtAttr(unix.IFLA_BR_NF_CALL_IP6TABLES, nl.Uint8Attr(0))
			d.AddRtAttr(unix.IFLA_BR_NF_CALL_ARPTABLES, nl.Uint8Attr(0))
		}, false},
		// VLAN filtering would drop tagged frames of VLANs not configured
		// on the ports; without CONFIG_BRIDGE_VLAN_FILTERING (gokrazy's
		// kernels) it does not exist.
		{"VLAN filtering off", func(d *nl.RtAttr) {
			d.AddRtAttr(unix.IFLA_BR_VLAN_FILTERING, nl.Uint8Attr(0))
		}, true},
	}
	for _, st := range steps {
		req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
		msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
		msg.Index = int32(index)
		req.AddData(msg)
		info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
		info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("bridge"))
		st.attrs(info.AddRtAttr(nl.IFLA_INFO_DATA, nil))
		req.AddData(info)
		_, err := req.Execute(unix.NETLINK_ROUTE, 0)
		if err != nil && !(st.absent && errors.Is(err, unix.EOPNOTSUPP)) {
			return fmt.Errorf("%s: %w", st.what, err)
		}
	}
	return nil
}

// listenOnly makes a port a pure listener: up, promiscuous, without
// addresses and without IPv6 (so no link-local address, no router
// solicitation, no autoconfiguration). A mirror port also answers no ARP:
// Linux answers for any of its addresses on any port.
func listenOnly(port string, noARP bool) error {
	l, err := netlink.LinkByName(port)
	if err != nil {
		return fmt.Errorf("port %s: %w", port, err)
	}
	if err := writeSysctl(filepath.Join("/proc/sys/net/ipv6/conf", port, "disable_ipv6"), "1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("port %s: %w", port, err)
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("port %s: addresses: %w", port, err)
	}
	for _, a := range addrs {
		if err := netlink.AddrDel(l, &a); err != nil {
			return fmt.Errorf("port %s: remove address %s: %w", port, a.IPNet, err)
		}
	}
	if l.Attrs().RawFlags&unix.IFF_PROMISC == 0 {
		if err := netlink.SetPromiscOn(l); err != nil {
			return fmt.Errorf("port %s: promiscuous: %w", port, err)
		}
	}
	if noARP && l.Attrs().RawFlags&unix.IFF_NOARP == 0 {
		if err := netlink.LinkSetARPOff(l); err != nil {
			return fmt.Errorf("port %s: arp off: %w", port, err)
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(l); err != nil {
			return fmt.Errorf("port %s: up: %w", port, err)
		}
	}
	return nil
}

// enslave puts the port in the bridge unless it is there already.
func enslave(port string, br netlink.Link) error {
	l, err := netlink.LinkByName(port)
	if err != nil {
		return fmt.Errorf("port %s: %w", port, err)
	}
	if l.Attrs().MasterIndex == br.Attrs().Index {
		return nil
	}
	if err := netlink.LinkSetMasterByIndex(l, br.Attrs().Index); err != nil {
		return fmt.Errorf("port %s: join bridge %s: %w", port, br.Attrs().Name, err)
	}
	return nil
}

func writeSysctl(path, v string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(v)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

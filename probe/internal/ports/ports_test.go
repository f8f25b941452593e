package ports_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/probe/internal/ports"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		s    ports.Setup
		want string // substring of the error, "" for none
	}{
		{ports.Setup{Mode: ports.Single}, ""},
		{ports.Setup{Mode: ports.Inline, Ports: []string{"eth0", "eth1"}}, ""},
		{ports.Setup{Mode: ports.Mirror, Ports: []string{"eth1"}}, ""},
		{ports.Setup{Mode: ports.Inline, Ports: []string{"eth0"}}, "exactly two"},
		{ports.Setup{Mode: ports.Inline, Ports: []string{"eth0", "eth0"}}, "named twice"},
		{ports.Setup{Mode: ports.Inline, Ports: []string{"eth0", "br0"}}, "named twice"},
		{ports.Setup{Mode: ports.Mirror}, "at least one"},
		{ports.Setup{Mode: ports.Mirror, Ports: []string{"../all"}}, "not an interface name"},
		{ports.Setup{Mode: ports.Mirror, Ports: []string{"a-very-long-name0"}}, "not an interface name"},
		{ports.Setup{Mode: "bridge"}, "not one of"},
	} {
		err := tc.s.Check()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.s, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: got %v, want an error saying %q", tc.s, err, tc.want)
		}
	}
}

// link is what `ip -j -d link show` says about an interface: the oracle,
// independent of the netlink library under test.
type link struct {
	Index    int      `json:"ifindex"`
	Flags    []string `json:"flags"`
	Master   string   `json:"master"`
	Address  string   `json:"address"`
	AddrInfo []struct {
		Local string `json:"local"`
	} `json:"addr_info"`
	LinkInfo struct {
		Kind string         `json:"info_kind"`
		Data map[string]any `json:"info_data"`
	} `json:"linkinfo"`
}

func showLink(t *testing.T, ns, name string) link {
	t.Helper()
	out := netnstest.Run(t, "ip", "-n", ns, "-j", "-d", "addr", "show", "dev", name)
	var ls []link
	if err := json.Unmarshal([]byte(out), &ls); err != nil || len(ls) != 1 {
		t.Fatalf("ip addr show %s: %v\n%s", name, err, out)
	}
	return ls[0]
}

func sysctl(t *testing.T, ns, path string) string {
	t.Helper()
	return strings.TrimSpace(netnstest.Run(t, "ip", "netns", "exec", ns, "cat", "/proc/sys/"+path))
}

func apply(t *testing.T, ns string, s ports.Setup) {
	t.Helper()
	if err := netnstest.DoIn(ns, func() error { return ports.Apply(s) }); err != nil {
		t.Fatalf("Apply %+v: %v", s, err)
	}
}

// probeNS makes the inline topology, with an address on eth0 as a DHCP
// client would have left it.
func probeNS(t *testing.T) (probe, router, phone string) {
	probe, router, phone = netnstest.InlineTopology(t)
	netnstest.Run(t, "ip", "-n", probe, "addr", "add", "192.0.2.9/24", "dev", "eth0")
	return probe, router, phone
}

// TestInlineBridge checks the bridge's options against iproute2's view,
// and that applying again (a probe restart) keeps the same bridge.
func TestInlineBridge(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root and network namespaces")
	}
	netnstest.Require(t, "ip", "sysctl")
	probe, _, _ := probeNS(t)
	// A bridge left with STP on and a forward delay (as a hand-made one
	// would be) must be made transparent, STP first.
	netnstest.Run(t, "ip", "-n", probe, "link", "add", "br0", "type", "bridge", "stp_state", "1", "forward_delay", "1500", "ageing_time", "1000")
	s := ports.Setup{Mode: ports.Inline, Ports: []string{"eth0", "eth1"}}
	apply(t, probe, s)

	br := showLink(t, probe, "br0")
	want := map[string]any{
		"stp_state": 0.0, "forward_delay": 0.0, "ageing_time": 30000.0, "group_fwd_mask": "0x4008",
		"mcast_snooping": 0.0, "nf_call_iptables": 0.0,
	}
	for k, v := range want {
		if got := br.LinkInfo.Data[k]; got != v {
			t.Errorf("br0 %s = %v, want %v", k, got, v)
		}
	}
	if !slices.Contains(br.Flags, "UP") {
		t.Errorf("br0 flags %v: not UP", br.Flags)
	}
	for _, p := range s.Ports {
		l := showLink(t, probe, p)
		if l.Master != "br0" || !slices.Contains(l.Flags, "PROMISC") || !slices.Contains(l.Flags, "UP") {
			t.Errorf("%s: master %q flags %v, want master br0, PROMISC, UP", p, l.Master, l.Flags)
		}
		if len(l.AddrInfo) != 0 {
			t.Errorf("%s keeps addresses %v", p, l.AddrInfo)
		}
		if v := sysctl(t, probe, "net/ipv6/conf/"+p+"/disable_ipv6"); v != "1" {
			t.Errorf("%s disable_ipv6 = %s, want 1", p, v)
		}
	}

	// Applying again changes nothing: the same bridge, ports untouched.
	apply(t, probe, s)
	if again := showLink(t, probe, "br0"); again.Index != br.Index || again.Address != br.Address {
		t.Errorf("second Apply: br0 index %d address %s, was %d %s", again.Index, again.Address, br.Index, br.Address)
	}
}

func TestInlineRefusesNonBridge(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root and network namespaces")
	}
	netnstest.Require(t, "ip")
	probe, _, _ := probeNS(t)
	netnstest.Run(t, "ip", "-n", probe, "link", "add", "br0", "type", "veth", "peer", "name", "br0peer")
	err := netnstest.DoIn(probe, func() error {
		return ports.Apply(ports.Setup{Mode: ports.Inline, Ports: []string{"eth0", "eth1"}})
	})
	if err == nil || !strings.Contains(err.Error(), "not a bridge") {
		t.Errorf("Apply over a veth named br0: %v, want 'not a bridge'", err)
	}
}

func TestMirror(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root and network namespaces")
	}
	netnstest.Require(t, "ip", "sysctl")
	probe, _, _ := probeNS(t)
	s := ports.Setup{Mode: ports.Mirror, Ports: []string{"eth0", "eth1"}}
	apply(t, probe, s)
	apply(t, probe, s) // idempotent
	for _, p := range s.Ports {
		l := showLink(t, probe, p)
		for _, f := range []string{"UP", "PROMISC", "NOARP"} {
			if !slices.Contains(l.Flags, f) {
				t.Errorf("%s flags %v: no %s", p, l.Flags, f)
			}
		}
		if l.Master != "" || len(l.AddrInfo) != 0 {
			t.Errorf("%s: master %q addresses %v, want none", p, l.Master, l.AddrInfo)
		}
		if v := sysctl(t, probe, "net/ipv6/conf/"+p+"/disable_ipv6"); v != "1" {
			t.Errorf("%s disable_ipv6 = %s, want 1", p, v)
		}
	}
	out := netnstest.Run(t, "ip", "-n", probe, "-o", "link", "show", "type", "bridge")
	if strings.TrimSpace(out) != "" {
		t.Errorf("mirror mode made a bridge: %s", out)
	}
}

// TestSingleChangesNothing: single mode leaves the ports as they are.
func TestSingleChangesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root and network namespaces")
	}
	netnstest.Require(t, "ip")
	probe, _, _ := probeNS(t)
	before := netnstest.Run(t, "ip", "-n", probe, "-d", "addr", "show")
	apply(t, probe, ports.Setup{Mode: ports.Single, Ports: []string{"eth0", "eth1"}})
	if after := netnstest.Run(t, "ip", "-n", probe, "-d", "addr", "show"); after != before {
		t.Errorf("single mode changed the links:\nbefore\n%s\nafter\n%s", before, after)
	}
}

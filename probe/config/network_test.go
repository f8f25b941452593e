package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/presscap/presscap/probe/internal/ports"
)

func TestNetworkPortsMakeLinks(t *testing.T) {
	c, err := Parse([]byte(`{"network": {"mode": "inline", "ports": [{"interface": "eth0", "side": "router"}, {"interface": "eth1"}]},
		"exports": [{"name": "all"}, {"name": "wan", "link": "eth0", "format": "pcap"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	want := []Link{{Interface: "eth0", Side: "router", Inbound: true}, {Interface: "eth1", Side: "eth1", Inbound: true}}
	if !reflect.DeepEqual(c.Links, want) {
		t.Errorf("links = %+v, want %+v", c.Links, want)
	}
	if c.Exports[0].Format != "pcapng" || c.Exports[1].Format != "pcap" {
		t.Errorf("formats %q %q, want pcapng (inline default) and the pcap asked for", c.Exports[0].Format, c.Exports[1].Format)
	}
	if s := c.Network.Setup(); !reflect.DeepEqual(s, ports.Setup{Mode: ports.Inline, Ports: []string{"eth0", "eth1"}}) {
		t.Errorf("Setup = %+v", s)
	}

	m, err := Parse([]byte(`{"network": {"mode": "mirror", "ports": [{"interface": "eth1"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("Validate mirror: %v", err)
	}
	if !reflect.DeepEqual(m.Links, []Link{{Interface: "eth1", Side: "eth1"}}) || m.Exports[0].Format != "" {
		t.Errorf("mirror: links %+v, export format %q; want eth1 and the pcap default", m.Links, m.Exports[0].Format)
	}

	d := DefaultConfig()
	if d.Network.Mode != ModeSingle || !reflect.DeepEqual(d.Network.Setup(), ports.Setup{Mode: ports.Single}) {
		t.Errorf("default network %+v: want single mode, nothing to set up", d.Network)
	}
}

// TestExportLinkSide: exports[].link names a link or a side; a side that
// several mirror ports share selects them all.
func TestExportLinkSide(t *testing.T) {
	c, err := Parse([]byte(`{"network": {"mode": "mirror", "ports": [{"interface": "eth1", "side": "lan"}, {"interface": "eth2", "side": "lan"}, {"interface": "eth3", "side": "wan"}]},
		"exports": [{"name": "lan", "link": "lan"}, {"name": "wan", "link": "wan"}, {"name": "two", "link": "eth2"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	for name, want := range map[string][]string{"lan": {"eth1", "eth2"}, "wan": {"eth3"}, "eth2": {"eth2"}, "nosuch": nil} {
		if got := c.LinksOf(name); !reflect.DeepEqual(got, want) {
			t.Errorf("LinksOf(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestNetworkErrors: each file breaks one rule of network and must get
// the named field.
func TestNetworkErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, field, want string
	}{
		{"mode", `{"network": {"mode": "bridge"}}`, "network.mode", "not one of inline, mirror, single"},
		{"ports in single", `{"network": {"ports": [{"interface": "eth1"}]}}`, "network.ports", "only in inline or mirror"},
		{"inline one port", `{"network": {"mode": "inline", "ports": [{"interface": "eth0"}]}}`, "network.ports", "exactly two ports, 1 given"},
		{"inline no port", `{"network": {"mode": "inline"}}`, "network.ports", "exactly two ports, 0 given"},
		{"mirror no port", `{"network": {"mode": "mirror"}}`, "network.ports", "at least one"},
		{"links with ports", `{"network": {"mode": "mirror", "ports": [{"interface": "eth1"}]}, "links": [{"interface": "eth1"}]}`, "links", "not allowed together with network.ports"},
		{"bad interface", `{"network": {"mode": "mirror", "ports": [{"interface": "eth1/2"}]}}`, "network.ports[0].interface", "not an interface name"},
		{"empty interface", `{"network": {"mode": "mirror", "ports": [{"side": "lan"}]}}`, "network.ports[0].interface", "is empty"},
		{"bridge as port", `{"network": {"mode": "inline", "ports": [{"interface": "eth0"}, {"interface": "br0"}]}}`, "network.ports[1].interface", "the bridge the probe makes"},
		{"port twice", `{"network": {"mode": "inline", "ports": [{"interface": "eth0"}, {"interface": "eth0"}]}}`, "network.ports[1].interface", "network.ports[0] already"},
		{"bad side", `{"network": {"mode": "mirror", "ports": [{"interface": "eth1", "side": "a b"}]}}`, "network.ports[0].side", "not usable in a file name"},
		{"one side twice", `{"network": {"mode": "inline", "ports": [{"interface": "eth0", "side": "x"}, {"interface": "eth1", "side": "x"}]}}`, "network.ports[1].side", "both sides"},
		{"side is a port", `{"network": {"mode": "inline", "ports": [{"interface": "eth0", "side": "eth1"}, {"interface": "eth1", "side": "b"}]}}`, "network.ports[0].side", "network.ports[1]'s interface"},
		{"export of no port", `{"network": {"mode": "mirror", "ports": [{"interface": "eth1"}]}, "exports": [{"name": "a", "link": "eth0"}]}`, "exports[0].link", "not a link name or a side"},
		{"unknown field", `{"network": {"mode": "mirror", "ports": [{"interface": "eth1", "name": "x"}]}}`, "network.ports[0].name", "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.file))
			if err == nil {
				err = c.Validate()
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("got %v, want Errors", err)
			}
			for _, e := range es {
				if e.Field == tc.field && strings.Contains(e.Error(), tc.want) {
					return
				}
			}
			t.Fatalf("got %v\nwant field %s: ...%s...", err, tc.field, tc.want)
		})
	}
}

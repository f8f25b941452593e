package report

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// ICMP errors, DHCPv4 and ARP, decoded with gopacket's layers.

const maxMiscKeys = 1024

type icmpSrc struct{ unreach, ttl uint64 }

type miscTable struct {
	icmp     ICMPStats
	icmpBy   map[netip.Addr]*icmpSrc
	dhcp     DHCPStats
	dhcpL    layers.DHCPv4
	requests map[uint32]bool // REQUEST xids still waiting for an ACK
	arp      ARPStats
	claims   map[netip.Addr][]string // IP -> hardware addresses seen claiming it

	unreachSpan, ttlSpan, dhcpSpan, arpSpan span
}

func (m *miscTable) init() {
	m.icmpBy = map[netip.Addr]*icmpSrc{}
	m.requests = map[uint32]bool{}
	m.claims = map[netip.Addr][]string{}
}

func (m *miscTable) by(a netip.Addr) *icmpSrc {
	s := m.icmpBy[a]
	if s == nil {
		if len(m.icmpBy) >= maxMiscKeys {
			return &icmpSrc{}
		}
		s = &icmpSrc{}
		m.icmpBy[a] = s
	}
	return s
}

// addICMP4 and addICMP6 count the ICMP messages that tell of a path's
// trouble, destination unreachable and time exceeded, by sender.
func (m *miscTable) addICMP4(l *layers.ICMPv4, pi packetInfo) {
	switch l.TypeCode.Type() {
	case layers.ICMPv4TypeDestinationUnreachable:
		m.addUnreachable(pi)
	case layers.ICMPv4TypeTimeExceeded:
		m.addTTLExceeded(pi)
	}
}

func (m *miscTable) addICMP6(l *layers.ICMPv6, pi packetInfo) {
	switch l.TypeCode.Type() {
	case layers.ICMPv6TypeDestinationUnreachable:
		m.addUnreachable(pi)
	case layers.ICMPv6TypeTimeExceeded:
		m.addTTLExceeded(pi)
	}
}

func (m *miscTable) addUnreachable(pi packetInfo) {
	m.icmp.Unreachable++
	m.by(pi.src).unreach++
	m.unreachSpan.add(pi.ts)
}

func (m *miscTable) addTTLExceeded(pi packetInfo) {
	m.icmp.TTLExceeded++
	m.by(pi.src).ttl++
	m.ttlSpan.add(pi.ts)
}

func (m *miscTable) addDHCP(b []byte, pi packetInfo) {
	if m.dhcpL.DecodeFromBytes(b, gopacket.NilDecodeFeedback) != nil {
		return
	}
	var typ layers.DHCPMsgType
	for _, o := range m.dhcpL.Options {
		if o.Type == layers.DHCPOptMessageType && len(o.Data) == 1 {
			typ = layers.DHCPMsgType(o.Data[0])
		}
	}
	switch typ {
	case layers.DHCPMsgTypeDiscover:
		m.dhcp.Discovers++
	case layers.DHCPMsgTypeRequest:
		m.dhcp.Requests++
		m.dhcpSpan.add(pi.ts)
		if len(m.requests) < maxMiscKeys {
			m.requests[m.dhcpL.Xid] = true
		}
	case layers.DHCPMsgTypeAck:
		m.dhcp.Leases++
		delete(m.requests, m.dhcpL.Xid)
	case layers.DHCPMsgTypeNak:
		m.dhcp.NAKs++
		m.dhcpSpan.add(pi.ts)
		delete(m.requests, m.dhcpL.Xid)
	}
}

func (m *miscTable) addARP(l *layers.ARP, ts int64) {
	m.arp.Packets++
	ip, ok := netip.AddrFromSlice(l.SourceProtAddress)
	if !ok || ip.IsUnspecified() || len(l.SourceHwAddress) != 6 {
		return
	}
	hw := net.HardwareAddr(l.SourceHwAddress).String()
	have := m.claims[ip]
	for _, h := range have {
		if h == hw {
			return
		}
	}
	if len(have) == 0 && len(m.claims) >= maxMiscKeys || len(have) >= 4 {
		return
	}
	m.claims[ip] = append(have, hw)
	if len(have) >= 1 {
		m.arpSpan.add(ts)
	}
}

func (m *miscTable) summary() (ICMPStats, DHCPStats, ARPStats) {
	ic := m.icmp
	for a, s := range m.icmpBy {
		ic.BySource = append(ic.BySource, ICMPBySource{Addr: a.String(), Unreachable: s.unreach, TTLExceeded: s.ttl})
	}
	sort.Slice(ic.BySource, func(i, j int) bool {
		a, b := ic.BySource[i], ic.BySource[j]
		if a.Unreachable+a.TTLExceeded != b.Unreachable+b.TTLExceeded {
			return a.Unreachable+a.TTLExceeded > b.Unreachable+b.TTLExceeded
		}
		return a.Addr < b.Addr
	})
	ic.BySource = ic.BySource[:min(len(ic.BySource), topTalkers)]
	dh := m.dhcp
	dh.RenewFailures = uint64(len(m.requests))
	ar := m.arp
	ar.DuplicateClaims = []string{}
	for ip, hws := range m.claims {
		if len(hws) > 1 {
			ar.DuplicateClaims = append(ar.DuplicateClaims, fmt.Sprintf("%s is-at %s", ip, strings.Join(hws, ", ")))
		}
	}
	sort.Strings(ar.DuplicateClaims)
	return ic, dh, ar
}

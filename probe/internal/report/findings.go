package report

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// findings picks the facts worth reading first, worst first, each with a
// display filter for Wireshark.
func findings(s *Summary) []Finding {
	var out []Finding
	add := func(sev string, first, last time.Time, filter, format string, args ...any) {
		out = append(out, Finding{Severity: sev, Text: fmt.Sprintf(format, args...), First: first, Last: last, DisplayFilter: filter})
	}
	// addEv is a finding over many packets: its evidence is the span of
	// the packets that make it.
	addEv := func(sev, ev, filter, format string, args ...any) {
		first, last := s.First, s.Last
		if sp, ok := s.evidence[ev]; ok && sp.first != 0 {
			first, last = stamp(sp.first), stamp(sp.last)
		}
		add(sev, first, last, filter, format, args...)
	}
	if s.CaptureDrops > 0 {
		add("error", s.First, s.Last, "frame", "The capture lost %d packets inside the window (kernel or disk too slow): every count here may be short by as many", s.CaptureDrops)
	}
	if s.Missing != "" {
		add("error", s.First, s.Last, "frame", "The files lack %s of the window (%s): nothing from that time is described", s.Missing, s.MissingReason)
	}
	for _, l := range s.Links {
		for _, g := range l.Down {
			side := ""
			if l.Side != "" {
				side = " (" + l.Side + " side)"
			}
			add("error", g.From, g.To, fmt.Sprintf("frame.time_epoch >= %.3f && frame.time_epoch <= %.3f", float64(g.From.UnixNano())/1e9, float64(g.To.UnixNano())/1e9),
				"Link %s%s was down for %s inside the window: no traffic could pass on that side", l.Name, side, g.Duration)
		}
	}
	for _, d := range s.SIP.Dialogs {
		filter := fmt.Sprintf("sip.Call-ID == %q", d.CallID)
		switch {
		case d.FinalCode >= 300:
			add("error", d.First, d.Last, filter, "Call %s → %s failed with %d", d.From, d.To, d.FinalCode)
		case strings.Contains(d.Verdict, "one-way") || strings.Contains(d.Verdict, "no RTP") || strings.Contains(d.Verdict, "loss") ||
			strings.Contains(d.Verdict, "timeout"):
			add("error", d.First, d.Last, filter+mediaFilter(d.Media), "Call %s → %s: %s", d.From, d.To, d.Verdict)
		case d.Verdict == "no final response to the INVITE":
			add("warning", d.First, d.Last, filter, "Call %s → %s: %s", d.From, d.To, d.Verdict)
		}
	}
	for _, r := range s.RTPStreams {
		filter := fmt.Sprintf("rtp.ssrc == 0x%08x", r.SSRC)
		switch {
		case r.Expected > 0 && r.LostPercent >= 1:
			add("error", r.First, r.Last, filter, "RTP %s → %s (SSRC 0x%08x): %.1f %% lost (%d of %d)", r.Src, r.Dst, r.SSRC, r.LostPercent, r.Lost, r.Expected)
		case r.MaxDeltaMs >= 200:
			add("warning", r.First, r.Last, filter, "RTP %s → %s (SSRC 0x%08x): a silence of %.0f ms", r.Src, r.Dst, r.SSRC, r.MaxDeltaMs)
		}
		if r.MaxJitterMs >= 30 {
			add("warning", r.First, r.Last, filter, "RTP %s → %s (SSRC 0x%08x): jitter up to %.1f ms (mean %.1f ms)", r.Src, r.Dst, r.SSRC, r.MaxJitterMs, r.MeanJitterMs)
		}
	}
	if s.DNS.Unanswered > 0 {
		addEv("error", "dns-unanswered", "dns.flags.response == 0 && !dns.response_in", "%d of %d DNS queries unanswered within 2 s", s.DNS.Unanswered, s.DNS.Queries)
	}
	var failures uint64
	for code, n := range s.DNS.Rcodes {
		if code != "NoError" && code != "NXDomain" {
			failures += n
		}
	}
	if failures > 0 {
		addEv("warning", "dns-failure", "dns.flags.rcode != 0 && dns.flags.rcode != 3", "%d DNS responses were failures (%s)", failures, rcodeList(s.DNS.Rcodes))
	}
	if s.DNS.Slow > 0 {
		addEv("warning", "dns-slow", "dns.time > 0.5", "%d DNS answers took longer than 500 ms (worst %.0f ms)", s.DNS.Slow, s.DNS.MaxMs)
	}
	if s.TCP.Failed > 0 {
		addEv("error", "tcp-failed", connFilter(s.TCP.FailedConnections), "%d of %d TCP connections failed (refused or no SYN-ACK)", s.TCP.Failed, s.TCP.Connections)
	}
	if s.TCP.Retransmissions > 0 && s.TCP.Packets > 0 && s.TCP.Retransmissions*100 >= s.TCP.Packets {
		addEv("warning", "tcp-retrans", "tcp.analysis.retransmission", "%d TCP retransmissions (%.1f %% of TCP packets)", s.TCP.Retransmissions, float64(s.TCP.Retransmissions)*100/float64(s.TCP.Packets))
	}
	if s.TCP.ZeroWindows > 0 {
		addEv("info", "tcp-zero", "tcp.analysis.zero_window", "%d TCP zero windows (a receiver could not keep up)", s.TCP.ZeroWindows)
	}
	if s.ICMP.Unreachable > 0 {
		addEv("warning", "icmp-unreach", "icmp.type == 3 || icmpv6.type == 1", "%d ICMP destination unreachable", s.ICMP.Unreachable)
	}
	if s.ICMP.TTLExceeded > 0 {
		addEv("info", "icmp-ttl", "icmp.type == 11 || icmpv6.type == 3", "%d ICMP time exceeded", s.ICMP.TTLExceeded)
	}
	if s.DHCP.NAKs > 0 || s.DHCP.RenewFailures > 0 {
		addEv("error", "dhcp", "dhcp.option.dhcp == 6 || dhcp.option.dhcp == 3", "DHCP: %d NAKs, %d requests without an ACK", s.DHCP.NAKs, s.DHCP.RenewFailures)
	}
	for _, c := range s.ARP.DuplicateClaims {
		addEv("error", "arp", "arp.duplicate-address-detected", "ARP: duplicate address %s", c)
	}
	if s.SlicedPackets > 0 {
		addEv("info", "sliced", "frame.cap_len < frame.len", "%d packets were sliced: %s", s.SlicedPackets, sliceNote)
	}
	if l := s.Limits; l.RTPStreamsDropped+l.SIPDialogsDropped+l.TCPConnectionsDropped+l.DNSQueriesDropped > 0 {
		add("info", s.First, s.Last, "", "The report's tables were full: packets of %d RTP streams, %d SIP dialogs, %d TCP connections and %d DNS queries beyond the caps were not analysed",
			l.RTPStreamsDropped, l.SIPDialogsDropped, l.TCPConnectionsDropped, l.DNSQueriesDropped)
	}
	rank := map[string]int{"error": 0, "warning": 1, "info": 2}
	sort.SliceStable(out, func(i, j int) bool {
		if rank[out[i].Severity] != rank[out[j].Severity] {
			return rank[out[i].Severity] < rank[out[j].Severity]
		}
		return out[i].First.Before(out[j].First)
	})
	if len(out) > maxFindings {
		out = out[:maxFindings]
	}
	if out == nil {
		out = []Finding{}
	}
	return out
}

// mediaFilter shows a call's RTP with its SIP: the SDP's addresses and
// ports.
func mediaFilter(media []string) string {
	var b strings.Builder
	for _, m := range media {
		ap, err := netip.ParseAddrPort(m)
		if err != nil {
			continue
		}
		ip := "ip"
		if ap.Addr().Is6() {
			ip = "ipv6"
		}
		fmt.Fprintf(&b, " || (%s.addr == %s && udp.port == %d)", ip, ap.Addr(), ap.Port())
	}
	return b.String()
}

// connFilter shows the packets of the given TCP connections.
func connFilter(conns [][2]netip.AddrPort) string {
	var l []string
	for _, c := range conns {
		ip := "ip"
		if c[0].Addr().Is6() {
			ip = "ipv6"
		}
		l = append(l, fmt.Sprintf("(%s.addr == %s && tcp.port == %d && %s.addr == %s && tcp.port == %d)",
			ip, c[0].Addr(), c[0].Port(), ip, c[1].Addr(), c[1].Port()))
	}
	return strings.Join(l, " || ")
}

func rcodeList(m map[string]uint64) string {
	var l []string
	for k, v := range m {
		if k != "NoError" && k != "NXDomain" {
			l = append(l, fmt.Sprintf("%s %d", k, v))
		}
	}
	sort.Strings(l)
	return strings.Join(l, ", ")
}

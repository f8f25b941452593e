package report

import (
	"net/netip"
	"time"
)

// Summary is the analysis of one capture: the manifest's `summary` and the
// output of `probe report -json`. Its JSON field names are an API.
type Summary struct {
	Traffic
	First time.Time  `json:"first,omitzero"`
	Last  time.Time  `json:"last,omitzero"`
	Start time.Time  `json:"start,omitzero"`
	Press *time.Time `json:"press,omitempty"`
	// Notes are what the reader must know about the report's coverage.
	Notes []string `json:"notes,omitempty"`
	// CaptureDrops are packets the capture lost inside the window, Missing
	// the part of the window the ring no longer held (a Go duration) and
	// MissingReason why: facts the saver passes in (see CaptureLoss).
	CaptureDrops     uint64 `json:"capture_drops"`
	Missing          string `json:"missing,omitempty"`
	MissingReason    string `json:"missing_reason,omitempty"`
	SliceNote        string `json:"slice_note,omitempty"`
	UndecodedPackets uint64 `json:"undecoded_packets"`
	// RateBytes is per bin of RateBinSeconds from Start, as RatePackets.
	RateBinSeconds int         `json:"rate_bin_seconds"`
	RateBytes      []uint64    `json:"rate_bytes"`
	Links          []LinkStats `json:"links"`
	Findings       []Finding   `json:"findings"`
	RTPStreams     []RTPStream `json:"rtp_streams"`
	RTCP           RTCPStats   `json:"rtcp"`
	SIP            SIPStats    `json:"sip"`
	DNS            DNSStats    `json:"dns"`
	TCP            TCPStats    `json:"tcp"`
	ICMP           ICMPStats   `json:"icmp"`
	DHCP           DHCPStats   `json:"dhcp"`
	ARP            ARPStats    `json:"arp"`
	Limits         Limits      `json:"limits"`

	// evidence holds the first and last packet of each aggregate finding.
	evidence map[string]span
}

// Finding is one fact the engineer should look at first, with its evidence:
// the first and last packet and a Wireshark display filter showing them.
type Finding struct {
	Severity      string    `json:"severity"` // "error", "warning" or "info"
	Text          string    `json:"text"`
	First         time.Time `json:"first"`
	Last          time.Time `json:"last"`
	DisplayFilter string    `json:"display_filter"`
}

// Traffic is what the report counts of the whole window (Summary) and
// of each link (LinkStats).
type Traffic struct {
	Packets       uint64 `json:"packets"`
	Bytes         uint64 `json:"bytes"`
	SlicedPackets uint64 `json:"sliced_packets"`
	// RatePackets are packets per bin of Summary.RateBinSeconds from
	// Summary.Start: the same bins for the window and each link.
	RatePackets []uint64 `json:"rate_packets"`
	TopTalkers  []Talker `json:"top_talkers"`
}

// LinkStats is one capture interface's (ring link's) traffic.
type LinkStats struct {
	Name string `json:"name"`
	// Side is the link's side of the bridge (network.ports), "" without.
	Side     string `json:"side,omitempty"`
	LinkType uint32 `json:"link_type"`
	Traffic
	Decoded bool `json:"decoded"`
	// Down are the times inside the window the link had no carrier, as
	// the service saw its port (network.ports; none without).
	Down []LinkGap `json:"down"`
}

// LinkGap is a time a link was down; Duration is a Go duration.
type LinkGap struct {
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Duration string    `json:"duration"`
}

// Talker is one IP address's share of the traffic.
type Talker struct {
	Addr            string `json:"addr"`
	PacketsSent     uint64 `json:"packets_sent"`
	BytesSent       uint64 `json:"bytes_sent"`
	PacketsReceived uint64 `json:"packets_received"`
	BytesReceived   uint64 `json:"bytes_received"`
}

// RTPStream is one RTP stream (source, destination, SSRC), with the
// statistics tshark's `-z rtp,streams` prints, computed the same way.
type RTPStream struct {
	Src         string    `json:"src"`
	Dst         string    `json:"dst"`
	SSRC        uint32    `json:"ssrc"`
	PayloadType uint8     `json:"payload_type"`
	Codec       string    `json:"codec,omitempty"`
	ClockRate   uint32    `json:"clock_rate"`
	CallID      string    `json:"call_id,omitempty"` // the SIP dialog whose SDP announced it
	FromSDP     bool      `json:"from_sdp"`
	First       time.Time `json:"first"`
	Last        time.Time `json:"last"`
	Packets     uint64    `json:"packets"`
	// Expected is last minus first sequence number plus one (with wraps);
	// Lost is Expected minus Packets (negative with duplicates), as tshark.
	Expected     int64   `json:"expected"`
	Lost         int64   `json:"lost"`
	LostPercent  float64 `json:"lost_percent"`
	OutOfOrder   uint64  `json:"out_of_order"` // sequence errors: late, duplicate or jump
	Duplicates   uint64  `json:"duplicates"`
	MaxDeltaMs   float64 `json:"max_delta_ms"` // longest gap between packets (the longest silence)
	MaxJitterMs  float64 `json:"max_jitter_ms"`
	MeanJitterMs float64 `json:"mean_jitter_ms"`
}

// RTCPStats counts RTCP packets and the worst reception report seen.
type RTCPStats struct {
	Packets           uint64  `json:"packets"`
	SenderReports     uint64  `json:"sender_reports"`
	ReceiverReports   uint64  `json:"receiver_reports"`
	MaxFractionLost   float64 `json:"max_fraction_lost_percent"`
	MaxJitterReported uint32  `json:"max_jitter_timestamp_units"`
}

// SIPStats counts SIP messages and describes the dialogs.
type SIPStats struct {
	Messages  uint64            `json:"messages"`
	Malformed uint64            `json:"malformed"`
	Requests  map[string]uint64 `json:"requests"`
	// Responses counts final responses (2xx-6xx) by code, Provisional the
	// 1xx: every message, retransmissions too, as tshark's sip,stat.
	Responses   map[string]uint64 `json:"responses"`
	Provisional map[string]uint64 `json:"provisional"`
	Calls       int               `json:"calls"` // dialogs with an INVITE
	Failed      int               `json:"failed"`
	Dialogs     []Dialog          `json:"dialogs"`
}

// Dialog is one SIP Call-ID.
type Dialog struct {
	CallID    string    `json:"call_id"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
	Methods   []string  `json:"methods"`
	FinalCode int       `json:"final_code,omitempty"` // of the first INVITE
	SetupMs   float64   `json:"setup_ms,omitempty"`   // INVITE to its 200
	// Ended is "BYE", "CANCEL", "failed", "timeout" (no response to the
	// INVITE within 32 s, or RTP stopped 5 s or more before the window's
	// end without BYE), "no final response" (still ringing), or "" (up).
	Ended     string   `json:"ended,omitempty"`
	Media     []string `json:"media,omitempty"` // SDP addresses and ports
	ReInvites int      `json:"re_invites"`
	Verdict   string   `json:"verdict"`
	StreamsIn []uint32 `json:"rtp_ssrcs,omitempty"`
}

// DNSStats counts DNS over UDP and TCP.
type DNSStats struct {
	Queries   uint64 `json:"queries"`
	Responses uint64 `json:"responses"`
	Malformed uint64 `json:"malformed"`
	// TCPMessages of the above came over TCP, reassembled; TCPLost are
	// messages over TCP cut by a segment the capture lacks (or sliced),
	// not counted.
	TCPMessages uint64            `json:"tcp_messages"`
	TCPLost     uint64            `json:"tcp_lost"`
	Rcodes      map[string]uint64 `json:"rcodes"` // responses by response code name
	// Unanswered queries had no response within 2 s; PendingAtEnd were
	// sent less than 2 s before the capture's end and had none yet.
	Unanswered   uint64      `json:"unanswered"`
	PendingAtEnd uint64      `json:"pending_at_end"`
	Slow         uint64      `json:"slow"` // answered after more than 500 ms
	MedianMs     float64     `json:"median_ms"`
	MaxMs        float64     `json:"max_ms"`
	Servers      []DNSServer `json:"servers"`
}

// DNSServer is one server's share of the queries.
type DNSServer struct {
	Addr       string `json:"addr"`
	Queries    uint64 `json:"queries"`
	Unanswered uint64 `json:"unanswered"`
	Failures   uint64 `json:"failures"` // responses with a code other than NoError/NXDomain
}

// TCPStats describes TCP connections and their trouble.
type TCPStats struct {
	Packets         uint64      `json:"packets"`
	Connections     uint64      `json:"connections"` // SYNs seen (one per connection)
	Established     uint64      `json:"established"`
	Failed          uint64      `json:"failed"` // SYN answered by RST, or no SYN-ACK
	Resets          uint64      `json:"resets"` // packets with RST
	Retransmissions uint64      `json:"retransmissions"`
	OutOfOrder      uint64      `json:"out_of_order"`
	ZeroWindows     uint64      `json:"zero_windows"`
	HandshakeMedMs  float64     `json:"handshake_rtt_median_ms"`
	HandshakeMaxMs  float64     `json:"handshake_rtt_max_ms"`
	Servers         []TCPServer `json:"servers"`
	// FailedConnections are the first ten failed ones, client then server.
	FailedConnections [][2]netip.AddrPort `json:"failed_connections"`
}

// TCPServer is one server's (SYN destination's) share.
type TCPServer struct {
	Addr            string  `json:"addr"`
	Connections     uint64  `json:"connections"`
	Failed          uint64  `json:"failed"`
	Retransmissions uint64  `json:"retransmissions"`
	HandshakeMaxMs  float64 `json:"handshake_rtt_max_ms"`
}

// ICMPStats counts errors by the router or host that sent them.
type ICMPStats struct {
	Unreachable uint64         `json:"unreachable"`
	TTLExceeded uint64         `json:"ttl_exceeded"`
	BySource    []ICMPBySource `json:"by_source"`
}

// ICMPBySource is one sender of ICMP errors.
type ICMPBySource struct {
	Addr        string `json:"addr"`
	Unreachable uint64 `json:"unreachable"`
	TTLExceeded uint64 `json:"ttl_exceeded"`
}

// DHCPStats counts DHCPv4 messages.
type DHCPStats struct {
	Discovers uint64 `json:"discovers"`
	Requests  uint64 `json:"requests"`
	Leases    uint64 `json:"leases"` // ACKs
	NAKs      uint64 `json:"naks"`
	// RenewFailures are REQUESTs that got no ACK in the window.
	RenewFailures uint64 `json:"renew_failures"`
}

// ARPStats reports addresses claimed by more than one hardware address.
type ARPStats struct {
	Packets         uint64   `json:"packets"`
	DuplicateClaims []string `json:"duplicate_claims"` // "IP is-at MAC1, MAC2"
}

// Limits are the caps the analysis ran with and what did not fit.
type Limits struct {
	MaxRTPStreams         int    `json:"max_rtp_streams"`
	RTPStreamsDropped     uint64 `json:"rtp_stream_packets_dropped"`
	MaxSIPDialogs         int    `json:"max_sip_dialogs"`
	SIPDialogsDropped     uint64 `json:"sip_dialog_messages_dropped"`
	MaxTCPConnections     int    `json:"max_tcp_connections"`
	TCPConnectionsDropped uint64 `json:"tcp_connection_packets_dropped"`
	MaxDNSQueries         int    `json:"max_dns_queries"`
	DNSQueriesDropped     uint64 `json:"dns_queries_dropped"`
	MaxTalkers            int    `json:"max_talkers"`
	TalkersDropped        uint64 `json:"talkers_dropped"`
}

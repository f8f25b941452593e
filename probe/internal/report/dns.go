package report

import (
	"net/netip"
	"slices"
	"sort"
	"strconv"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// DNS over port 53, UDP and TCP (see dnstcp.go), decoded with gopacket's
// DNS layer.

const (
	dnsTimeout = 2e9   // a query with no response within this is unanswered
	dnsSlow    = 500e6 // an answer later than this is slow
)

type dnsKey struct {
	client netip.AddrPort
	server netip.Addr
	id     uint16
}

type dnsServer struct {
	queries, unanswered, failures uint64
}

type dnsTable struct {
	max       int
	layer     layers.DNS
	stats     DNSStats
	pending   map[dnsKey]int64
	servers   map[netip.Addr]*dnsServer
	latencies []float64 // ms, bounded by max
	expired   int64     // time of the last sweep of the full table

	unansweredSpan, failureSpan, slowSpan span
	dropped                               uint64
	tcp                                   dnsTCP
}

func (t *dnsTable) init(max int) {
	t.max = max
	t.pending = map[dnsKey]int64{}
	t.servers = map[netip.Addr]*dnsServer{}
	t.stats.Rcodes = map[string]uint64{}
}

// rcodeName is the IANA mnemonic of a DNS response code.
func rcodeName(c layers.DNSResponseCode) string {
	switch c {
	case 0:
		return "NoError"
	case 1:
		return "FormErr"
	case 2:
		return "ServFail"
	case 3:
		return "NXDomain"
	case 4:
		return "NotImp"
	case 5:
		return "Refused"
	}
	return "RCODE" + strconv.Itoa(int(c))
}

func (t *dnsTable) server(a netip.Addr) *dnsServer {
	s := t.servers[a]
	if s == nil {
		if len(t.servers) >= t.max {
			return &dnsServer{}
		}
		s = &dnsServer{}
		t.servers[a] = s
	}
	return s
}

// addTCP takes a segment of a DNS-over-TCP connection: its whole
// messages count as UDP ones do, at the time of the segment that
// completes each (as Wireshark's reassembly dates them).
func (t *dnsTable) addTCP(h *layers.TCP, seglen int, pi packetInfo, src, dst netip.AddrPort) {
	t.tcp.add(h, seglen, src, dst, func(m []byte) {
		t.stats.TCPMessages++
		t.add(m, pi, src, dst)
	})
}

func (t *dnsTable) add(b []byte, pi packetInfo, src, dst netip.AddrPort) {
	if err := t.layer.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
		t.stats.Malformed++
		return
	}
	d := &t.layer
	if !d.QR {
		t.stats.Queries++
		t.server(dst.Addr()).queries++
		k := dnsKey{src, dst.Addr(), d.ID}
		if _, ok := t.pending[k]; ok {
			return // a retry: the first one's clock runs
		}
		if len(t.pending) >= t.max {
			// A full table is swept at most every 500 ms of packet time:
			// a flood of queries must not cost a sweep each.
			if pi.ts-t.expired > dnsTimeout/4 {
				t.expired = pi.ts
				t.expire(pi.ts)
			}
			if len(t.pending) >= t.max {
				t.dropped++
				return
			}
		}
		t.pending[k] = pi.ts
		return
	}
	t.stats.Responses++
	bump(t.stats.Rcodes, rcodeName(d.ResponseCode))
	if d.ResponseCode != 0 && d.ResponseCode != 3 {
		t.server(src.Addr()).failures++
		t.failureSpan.add(pi.ts)
	}
	k := dnsKey{dst, src.Addr(), d.ID}
	sent, ok := t.pending[k]
	if !ok {
		return
	}
	delete(t.pending, k)
	lat := pi.ts - sent
	if lat > dnsTimeout {
		t.stats.Unanswered++
		t.server(src.Addr()).unanswered++
		t.unansweredSpan.add(sent)
	}
	if lat > dnsSlow {
		t.stats.Slow++
		t.slowSpan.add(sent)
		t.slowSpan.add(pi.ts)
	}
	ms := float64(lat) / 1e6
	t.stats.MaxMs = max(t.stats.MaxMs, ms)
	if len(t.latencies) < t.max {
		t.latencies = append(t.latencies, ms)
	}
}

// expire counts the queries older than the timeout as unanswered, making
// room in the table.
func (t *dnsTable) expire(now int64) {
	for k, sent := range t.pending {
		if now-sent > dnsTimeout {
			t.unansweredSpan.add(sent)
			t.stats.Unanswered++
			t.server(k.server).unanswered++
			delete(t.pending, k)
		}
	}
}

func (t *dnsTable) summary(last int64) DNSStats {
	st := t.stats
	st.Rcodes = maps(t.stats.Rcodes)
	st.TCPLost = t.tcp.lost
	late := map[netip.Addr]uint64{}
	for k, sent := range t.pending {
		if last-sent > dnsTimeout {
			st.Unanswered++
			late[k.server]++
		} else {
			st.PendingAtEnd++
		}
	}
	if len(t.latencies) > 0 {
		l := slices.Clone(t.latencies)
		sort.Float64s(l)
		st.MedianMs = l[len(l)/2]
	}
	for a, s := range t.servers {
		st.Servers = append(st.Servers, DNSServer{Addr: a.String(), Queries: s.queries, Unanswered: s.unanswered + late[a], Failures: s.failures})
	}
	sort.Slice(st.Servers, func(i, j int) bool {
		if st.Servers[i].Queries != st.Servers[j].Queries {
			return st.Servers[i].Queries > st.Servers[j].Queries
		}
		return st.Servers[i].Addr < st.Servers[j].Addr
	})
	st.Servers = st.Servers[:min(len(st.Servers), topTalkers)]
	return st
}

// pendingSpan returns the send times of the queries still unanswered at
// the end that count as unanswered.
func (t *dnsTable) pendingSpan(last int64) []int64 {
	var out []int64
	for _, sent := range t.pending {
		if last-sent > dnsTimeout {
			out = append(out, sent)
		}
	}
	return out
}

func maps(m map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

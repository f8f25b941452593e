// Package reportcheck holds the report's figures against tshark's on the
// same capture file: RTP streams (`-z rtp,streams`), SIP responses
// (`-z sip,stat`), DNS (`-z dns,tree`, queries without dns.response_in) and
// TCP (tcp.analysis.retransmission, resets), within 1 % or the 0.0005 ms
// tshark's three decimals round to. Tests that write a capture file call
// File on it.
package reportcheck

import (
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/internal/report"
)

// Tshark is tshark's statistics of one file.
type Tshark struct {
	RTP       map[uint32]RTP
	SIP       map[string]uint64 // response code -> messages
	DNSRcodes map[string]uint64 // over every DNS message, queries included
	DNSQuery  uint64
	DNSResp   uint64
	DNSNoResp uint64 // queries without dns.response_in
	Retrans   uint64
	Resets    uint64
	// InSequence says, per SSRC, whether some packet followed the one
	// before it of that SSRC by one sequence number.
	InSequence map[uint32]bool
}

// RTP is one line of tshark's rtp,streams.
type RTP struct {
	Packets                         uint64
	Lost                            int64
	MaxDelta, MaxJitter, MeanJitter float64
}

// Run runs tshark on file with args (after -n -r file) and returns its
// standard output.
func Run(t testing.TB, file string, args ...string) string {
	t.Helper()
	bin := testtool.Path(t, "tshark", "tshark")
	cmd := exec.Command(bin, append([]string{"-n", "-r", file}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

var (
	// "  2.04  12.02  192.168.1.10 40000  203.0.113.5 50000 0x00001111  g711U  496  4 (0.8%)  1.000 20.152 123.162 0.075 3.292 20.018 X"
	rtpLine = regexp.MustCompile(`^\s*\S+\s+\S+\s+\S+\s+\d+\s+\S+\s+\d+\s+0x([0-9A-Fa-f]{8})\s+.*?\s(\d+)\s+(-?\d+)\s+\(\S+%\)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)`)
	sipLine = regexp.MustCompile(`^\s*SIP (\d{3}) .*:\s+(\d+) Packets`)
	dnsLine = regexp.MustCompile(`^\s+(No error|No such name|Server failure|Refused|Format error|Not implemented|Query|Response)\s+(\d+)\s`)
)

var tsharkRcode = map[string]string{"No error": "NoError", "No such name": "NXDomain", "Server failure": "ServFail",
	"Refused": "Refused", "Format error": "FormErr", "Not implemented": "NotImp"}

// Stats runs tshark twice on file (the statistics, then a two-pass
// dissection for the per-packet flags) with the options opts.
func Stats(t testing.TB, file string, opts ...string) Tshark {
	t.Helper()
	st := Tshark{RTP: map[uint32]RTP{}, SIP: map[string]uint64{}, DNSRcodes: map[string]uint64{}, InSequence: map[uint32]bool{}}
	for _, line := range strings.Split(Run(t, file, append(opts, "-q", "-z", "rtp,streams", "-z", "sip,stat", "-z", "dns,tree")...), "\n") {
		if m := rtpLine.FindStringSubmatch(line); m != nil {
			ssrc, _ := strconv.ParseUint(m[1], 16, 32)
			var r RTP
			r.Packets, _ = strconv.ParseUint(m[2], 10, 64)
			r.Lost, _ = strconv.ParseInt(m[3], 10, 64)
			r.MaxDelta, _ = strconv.ParseFloat(m[6], 64)
			r.MeanJitter, _ = strconv.ParseFloat(m[8], 64)
			r.MaxJitter, _ = strconv.ParseFloat(m[9], 64)
			st.RTP[uint32(ssrc)] = r
			continue
		}
		if m := sipLine.FindStringSubmatch(line); m != nil {
			n, _ := strconv.ParseUint(m[2], 10, 64)
			st.SIP[m[1]] += n
			continue
		}
		if m := dnsLine.FindStringSubmatch(line); m != nil {
			n, _ := strconv.ParseUint(m[2], 10, 64)
			switch m[1] {
			case "Query":
				st.DNSQuery = n
			case "Response":
				st.DNSResp = n
			default:
				st.DNSRcodes[tsharkRcode[m[1]]] = n
			}
		}
	}
	// -2: dns.response_in is known only after a first pass. A frame may
	// hold several DNS messages (over TCP): its queries without an answer
	// are its queries less its response_in links.
	out := Run(t, file, append(opts, "-2", "-Y", "tcp.analysis.retransmission || tcp.flags.reset == 1 || (dns.flags.response == 0 && !dns.response_in) || rtp",
		"-T", "fields", "-E", "occurrence=a", "-E", "aggregator=;", "-e", "tcp.analysis.retransmission", "-e", "tcp.flags.reset",
		"-e", "dns.flags.response", "-e", "dns.response_in", "-e", "rtp.ssrc", "-e", "rtp.seq")...)
	lastSeq := map[uint32]uint16{}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 6 {
			continue
		}
		ssrc, err1 := strconv.ParseUint(strings.TrimPrefix(f[4], "0x"), 16, 32)
		seq, err2 := strconv.ParseUint(f[5], 10, 16)
		if err1 == nil && err2 == nil {
			k := uint32(ssrc)
			if prev, ok := lastSeq[k]; ok && uint16(seq) == prev+1 {
				st.InSequence[k] = true
			}
			lastSeq[k] = uint16(seq)
		}
		if f[0] != "" {
			st.Retrans++
		}
		if f[1] == "1" || f[1] == "True" {
			st.Resets++
		}
		queries := 0
		for _, r := range strings.Split(f[2], ";") {
			if r == "0" || r == "False" {
				queries++
			}
		}
		if f[3] != "" {
			queries -= len(strings.Split(f[3], ";"))
		}
		st.DNSNoResp += uint64(max(queries, 0))
	}
	return st
}

// within says whether got is within 1 % of want or within the 0.0005 ms
// tshark's three decimals round to.
func within(got, want float64) bool {
	return math.Abs(got-want) <= max(0.01*math.Abs(want), 0.0005+1e-9)
}

// Compare checks every figure the issue names against tshark's.
func Compare(t testing.TB, s *report.Summary, ts Tshark) {
	t.Helper()
	if len(s.RTPStreams) != len(ts.RTP) {
		t.Errorf("RTP streams: report has %d, tshark %d", len(s.RTPStreams), len(ts.RTP))
	}
	for _, r := range s.RTPStreams {
		w, ok := ts.RTP[r.SSRC]
		if !ok {
			t.Errorf("RTP stream 0x%08x: not in tshark's rtp,streams", r.SSRC)
			continue
		}
		if r.Packets != w.Packets || r.Lost != w.Lost {
			t.Errorf("RTP 0x%08x: packets %d lost %d, tshark %d %d", r.SSRC, r.Packets, r.Lost, w.Packets, w.Lost)
		}
		for _, f := range []struct {
			name      string
			got, want float64
		}{{"max delta", r.MaxDeltaMs, w.MaxDelta}, {"max jitter", r.MaxJitterMs, w.MaxJitter}, {"mean jitter", r.MeanJitterMs, w.MeanJitter}} {
			if !within(f.got, f.want) {
				t.Errorf("RTP 0x%08x: %s %.3f ms, tshark %.3f ms", r.SSRC, f.name, f.got, f.want)
			}
		}
	}
	codes := map[string]uint64{}
	for c, n := range s.SIP.Responses {
		codes[c] += n
	}
	for c, n := range s.SIP.Provisional {
		codes[c] += n
	}
	if fmt.Sprint(codes) != fmt.Sprint(ts.SIP) {
		t.Errorf("SIP responses by code: report %v, tshark sip,stat %v", codes, ts.SIP)
	}
	if s.DNS.Queries != ts.DNSQuery || s.DNS.Responses != ts.DNSResp {
		t.Errorf("DNS queries/responses: report %d/%d, tshark %d/%d", s.DNS.Queries, s.DNS.Responses, ts.DNSQuery, ts.DNSResp)
	}
	// dns,tree counts a query's rcode (0, No error) too.
	rc := maps.Clone(s.DNS.Rcodes)
	if rc == nil {
		rc = map[string]uint64{}
	}
	if ts.DNSQuery > 0 {
		rc["NoError"] += s.DNS.Queries
	}
	if fmt.Sprint(rc) != fmt.Sprint(ts.DNSRcodes) {
		t.Errorf("DNS rcodes (queries counted as NoError): report %v, tshark dns,tree %v", rc, ts.DNSRcodes)
	}
	if s.DNS.Unanswered+s.DNS.PendingAtEnd != ts.DNSNoResp {
		t.Errorf("DNS unanswered: report %d (+%d pending at the end), tshark %d queries without dns.response_in",
			s.DNS.Unanswered, s.DNS.PendingAtEnd, ts.DNSNoResp)
	}
	if s.TCP.Retransmissions != ts.Retrans || s.TCP.Resets != ts.Resets {
		t.Errorf("TCP retransmissions/resets: report %d/%d, tshark tcp.analysis.retransmission %d, tcp.flags.reset %d",
			s.TCP.Retransmissions, s.TCP.Resets, ts.Retrans, ts.Resets)
	}
}

// Read analyses the capture file at path.
func Read(t testing.TB, path string, opt report.Options) *report.Summary {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := report.Read(f, opt)
	if err != nil {
		t.Fatalf("report %s: %v", path, err)
	}
	return s
}

// File compares the report of the capture file at path with tshark's
// figures, with the options a saved window's report has (RTP found by the
// heuristic too, as tshark's -o rtp.heuristic_rtp:TRUE), and returns the
// report. The report's heuristic starts a stream only at two packets in
// sequence (documented): the streams tshark's heuristic makes of UDP
// payloads that merely start with version 2 (one packet, or the same one
// again) are left out.
func File(t testing.TB, path string) *report.Summary {
	t.Helper()
	s := Read(t, path, report.Options{HeuristicRTP: true})
	ts := Stats(t, path, "-o", "rtp.heuristic_rtp:TRUE")
	have := map[uint32]bool{}
	for _, r := range s.RTPStreams {
		have[r.SSRC] = true
	}
	for ssrc, r := range ts.RTP {
		if !have[ssrc] && (r.Packets == 1 || !ts.InSequence[ssrc]) {
			delete(ts.RTP, ssrc)
		}
	}
	Compare(t, s, ts)
	return s
}

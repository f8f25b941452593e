package report_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/probe/internal/report"
	"github.com/presscap/presscap/probe/internal/report/reportcheck"
	"github.com/presscap/presscap/probe/internal/report/reporttest"
)

// TestMatchesTsharkAndTruth analyses the generated VoIP, DNS and TCP
// traffic (SDP in the window, tshark's default options) and checks the
// figures against the generator's truth and against tshark 4's.
func TestMatchesTsharkAndTruth(t *testing.T) {
	if testing.Short() {
		t.Skip("tshark: not under -short")
	}
	g, tr := reporttest.Mixed(1)
	path := g.WritePCAP(t, "voip.pcap")
	s := reportcheck.Read(t, path, report.Options{})
	reportcheck.Compare(t, s, reportcheck.Stats(t, path))

	// The truth the generator injected.
	for ssrc, want := range tr.RTP {
		found := false
		for _, r := range s.RTPStreams {
			if r.SSRC == ssrc {
				found = true
				if r.Packets != want.Packets || r.Lost != want.Lost {
					t.Errorf("RTP 0x%08x: packets %d lost %d, injected %d %d", ssrc, r.Packets, r.Lost, want.Packets, want.Lost)
				}
				if !r.FromSDP {
					t.Errorf("RTP 0x%08x: not matched to its SDP", ssrc)
				}
			}
		}
		if !found {
			t.Errorf("RTP 0x%08x: missing", ssrc)
		}
	}
	if fmt.Sprint(s.SIP.Responses) != fmt.Sprint(tr.SIPFinal) || fmt.Sprint(s.SIP.Provisional) != fmt.Sprint(tr.SIPProvisional) || s.SIP.Calls != tr.Calls {
		t.Errorf("SIP: responses %v provisional %v calls %d, injected %v %v %d", s.SIP.Responses, s.SIP.Provisional, s.SIP.Calls,
			tr.SIPFinal, tr.SIPProvisional, tr.Calls)
	}
	if s.DNS.Queries != tr.DNSQueries || s.DNS.Unanswered != tr.DNSUnanswered || fmt.Sprint(s.DNS.Rcodes) != fmt.Sprint(tr.DNSRcodes) {
		t.Errorf("DNS: queries %d unanswered %d rcodes %v, injected %d %d %v", s.DNS.Queries, s.DNS.Unanswered, s.DNS.Rcodes,
			tr.DNSQueries, tr.DNSUnanswered, tr.DNSRcodes)
	}
	if s.TCP.Connections != tr.TCPConnections || s.TCP.Retransmissions != tr.TCPRetrans || s.TCP.Resets != tr.TCPResets || s.TCP.Failed != tr.TCPFailed {
		t.Errorf("TCP: connections %d retransmissions %d resets %d failed %d, injected %d %d %d %d", s.TCP.Connections,
			s.TCP.Retransmissions, s.TCP.Resets, s.TCP.Failed, tr.TCPConnections, tr.TCPRetrans, tr.TCPResets, tr.TCPFailed)
	}
	// The verdicts and findings an engineer reads first.
	verdicts := map[string]string{}
	for _, d := range s.SIP.Dialogs {
		verdicts[d.CallID] = d.Verdict
	}
	for id, want := range map[string]string{
		"call-ok@192.168.1.10": "12 % loss on the downstream leg (to 192.168.1.10:40000)",
		tr.FailedCallID:        "call failed: 486",
		tr.OneWayCallID:        "one-way audio; no RTP on the downstream leg (to 192.168.1.10:40004)",
	} {
		if verdicts[id] != want {
			t.Errorf("verdict of %s: %q, want %q", id, verdicts[id], want)
		}
	}
	// Every finding's display filter is one Wireshark accepts, and shows
	// packets of the file inside the finding's first..last.
	for _, f := range s.Findings {
		out := strings.TrimSpace(reportcheck.Run(t, path, "-2", "-Y", f.DisplayFilter, "-T", "fields", "-e", "frame.time_epoch"))
		if out == "" {
			t.Errorf("finding %q: filter %q shows no packet", f.Text, f.DisplayFilter)
			continue
		}
		for _, l := range strings.Split(out, "\n") {
			sec, _ := strconv.ParseFloat(l, 64)
			at := time.Unix(0, int64(sec*1e9))
			if at.Before(f.First.Add(-time.Millisecond)) || at.After(f.Last.Add(time.Millisecond)) {
				if !strings.Contains(f.DisplayFilter, "sip.Call-ID") {
					t.Errorf("finding %q: filter %q shows a packet at %v, outside %v..%v", f.Text, f.DisplayFilter, at, f.First, f.Last)
				}
				break
			}
		}
	}
	wantFindings := []string{"failed with 486", "one-way audio", "12.4 % lost", "4 of 40 DNS queries unanswered", "2 of 3 TCP connections failed"}
	for _, w := range wantFindings {
		found := false
		for _, f := range s.Findings {
			if strings.Contains(f.Text, w) && f.DisplayFilter != "" && !f.First.IsZero() && !f.Last.Before(f.First) {
				found = true
			}
		}
		if !found {
			t.Errorf("no finding %q with evidence in %+v", w, s.Findings)
		}
	}
}

// TestHeuristicRTPMatchesTshark: RTP with no SDP in the window (the call
// was set up before it), found by the heuristic, against tshark with
// -o rtp.heuristic_rtp:TRUE: a sequence wrap, a wild jump, late packets,
// comfort noise and a marked talk spurt.
func TestHeuristicRTPMatchesTshark(t *testing.T) {
	if testing.Short() {
		t.Skip("tshark: not under -short")
	}
	g := reporttest.New(2)
	tr := &reporttest.Truth{RTP: map[uint32]reporttest.RTPTruth{}}
	g.RTP(tr, 0, "10.0.0.2", 16384, "10.0.0.3", 16386, reporttest.RTPOpts{SSRC: 0xdeadbeef, N: 1500, FirstSeq: 65000, LossEvery: 50,
		Swap: []int{700, 900}, JitterMs: 15, Marker: []int{300}, PT: 8})
	g.RTP(tr, time.Second, "10.0.0.3", 16386, "10.0.0.2", 16384, reporttest.RTPOpts{SSRC: 0x0badcafe, N: 1000, FirstSeq: 100,
		Burst: [2]int{200, 260}, Gap: [2]int{500, 400}, PT: 0})
	// A wild jump: the sender restarts its sequence numbers mid-stream.
	for i := 0; i < 50; i++ {
		b := []byte{0x80, 0, byte((30000 + i) >> 8), byte(30000 + i), 0, 0, byte(i >> 8), byte(i), 0x12, 0x34, 0x56, 0x78}
		if i >= 25 {
			b[2], b[3] = byte(i), 7
		}
		g.UDP(2*time.Second+time.Duration(i)*20*time.Millisecond, "10.0.0.4", 20000, "10.0.0.5", 20002, append(b, make([]byte, 80)...))
	}
	path := g.WritePCAP(t, "heuristic.pcap")
	s := reportcheck.Read(t, path, report.Options{HeuristicRTP: true})
	ts := reportcheck.Stats(t, path, "-o", "rtp.heuristic_rtp:TRUE")
	reportcheck.Compare(t, s, ts)
	if len(ts.RTP) != 3 {
		t.Fatalf("tshark found %d heuristic RTP streams, want 3", len(ts.RTP))
	}
	// Without the heuristic and without SDP, no stream.
	if s := reportcheck.Read(t, path, report.Options{}); len(s.RTPStreams) != 0 {
		t.Errorf("RTP without SDP or heuristic: %d streams", len(s.RTPStreams))
	}
}

// TestBusyLineMatchesTshark: the benchmark's busy line (two calls, DNS,
// three TCP transfers with retransmissions), 20 s of it, against tshark.
func TestBusyLineMatchesTshark(t *testing.T) {
	if testing.Short() {
		t.Skip("tshark: not under -short")
	}
	g := reporttest.Busy(2, 20*time.Second, 3)
	path := g.WritePCAP(t, "busy.pcap")
	s := reportcheck.Read(t, path, report.Options{})
	if len(s.RTPStreams) != 4 || s.TCP.Retransmissions == 0 {
		t.Fatalf("busy line: %d RTP streams, %d retransmissions", len(s.RTPStreams), s.TCP.Retransmissions)
	}
	reportcheck.Compare(t, s, reportcheck.Stats(t, path))
}

// TestCallVerdicts: a call whose media stops before a re-INVITE, and one
// cancelled before the answer.
func TestCallVerdicts(t *testing.T) {
	g := reporttest.New(5)
	tr := &reporttest.Truth{RTP: map[uint32]reporttest.RTPTruth{}, SIPFinal: map[string]uint64{}, SIPProvisional: map[string]uint64{}}
	up := g.Call(tr, 0, "reinvite@x", 200, 41000, 51000)
	g.RTP(tr, up, "192.168.1.10", 41000, "203.0.113.5", 51000, reporttest.RTPOpts{SSRC: 1, N: 100, FirstSeq: 1})
	g.RTP(tr, up, "203.0.113.5", 51000, "192.168.1.10", 41000, reporttest.RTPOpts{SSRC: 2, N: 100, FirstSeq: 1})
	g.UDP(up+5*time.Second, "192.168.1.10", 5060, "203.0.113.5", 5060, reporttest.SIPMsg("INVITE sip:bob@example.net SIP/2.0", "reinvite@x", "a", "b", "2 INVITE",
		reporttest.SDPBody("192.168.1.10", 41000, "0", "")))
	g.UDP(0, "192.168.1.10", 5060, "203.0.113.5", 5060, reporttest.SIPMsg("INVITE sip:carol@example.net SIP/2.0", "cancel@x", "a", "c", "1 INVITE", ""))
	g.UDP(time.Second, "192.168.1.10", 5060, "203.0.113.5", 5060, reporttest.SIPMsg("CANCEL sip:carol@example.net SIP/2.0", "cancel@x", "a", "c", "1 CANCEL", ""))
	g.Sort()
	a := report.New([]report.Link{{LinkType: 1}}, report.Options{})
	for _, p := range g.Pkts {
		a.Add(0, p.TS, uint32(len(p.Data)), p.Data)
	}
	s := a.Summary()
	got := map[string]report.Dialog{}
	for _, d := range s.SIP.Dialogs {
		got[d.CallID] = d
	}
	if d := got["reinvite@x"]; d.ReInvites != 1 || !strings.Contains(d.Verdict, "no RTP after re-INVITE") {
		t.Errorf("re-INVITE call: %+v", d)
	}
	if d := got["cancel@x"]; d.Ended != "CANCEL" || d.Verdict != "call cancelled before answer" {
		t.Errorf("cancelled call: %+v", d)
	}
}

// TestCallTimeouts: calls that ended by timeout inside the window, and
// the ones that did not (yet). The generator's truth: an INVITE
// retransmitted as Timer A does with no response at all (Timer B fires
// at 32 s); a call answered whose RTP stops both ways at 4 s with no BYE;
// a call still ringing (180, no final response); a call with a BYE; one
// with upstream loss. The window (End) runs to 40 s.
func TestCallTimeouts(t *testing.T) {
	g := reporttest.New(6)
	tr := &reporttest.Truth{RTP: map[uint32]reporttest.RTPTruth{}, SIPFinal: map[string]uint64{}, SIPProvisional: map[string]uint64{}}
	for _, at := range []time.Duration{0, 500 * time.Millisecond, 1500 * time.Millisecond, 3500 * time.Millisecond, 7500 * time.Millisecond, 15500 * time.Millisecond} {
		g.UDP(at, "192.168.1.10", 5060, "203.0.113.5", 5060, reporttest.SIPMsg("INVITE sip:dave@example.net SIP/2.0", "nobody@x", "a", "d", "1 INVITE", ""))
	}
	up := g.Call(tr, 0, "silent@x", 200, 42000, 52000)
	g.RTP(tr, up, "192.168.1.10", 42000, "203.0.113.5", 52000, reporttest.RTPOpts{SSRC: 3, N: 100, FirstSeq: 1})
	g.RTP(tr, up, "203.0.113.5", 52000, "192.168.1.10", 42000, reporttest.RTPOpts{SSRC: 4, N: 100, FirstSeq: 1})
	g.UDP(20*time.Second, "192.168.1.10", 5060, "203.0.113.5", 5060, reporttest.SIPMsg("INVITE sip:erin@example.net SIP/2.0", "ringing@x", "a", "e", "1 INVITE", ""))
	g.UDP(20*time.Second+100*time.Millisecond, "203.0.113.5", 5060, "192.168.1.10", 5060, reporttest.SIPMsg("SIP/2.0 180 Ringing", "ringing@x", "a", "e", "1 INVITE", ""))
	up = g.Call(tr, 10*time.Second, "upstream@x", 200, 43000, 53000)
	g.RTP(tr, up, "192.168.1.10", 43000, "203.0.113.5", 53000, reporttest.RTPOpts{SSRC: 5, N: 1400, FirstSeq: 1, LossEvery: 20})
	g.RTP(tr, up, "203.0.113.5", 53000, "192.168.1.10", 43000, reporttest.RTPOpts{SSRC: 6, N: 1400, FirstSeq: 1})
	g.Bye(tr, up+28*time.Second+100*time.Millisecond, "upstream@x")
	g.Sort()
	end := g.T0 + int64(40*time.Second)
	a := report.New([]report.Link{{LinkType: 1}}, report.Options{})
	for _, p := range g.Pkts {
		a.Add(0, p.TS, uint32(len(p.Data)), p.Data)
	}
	// Without the window's end, the last packet (the BYE's answer at 40.2 s) ends it.
	a.SetEnd(end)
	s := a.Summary()
	got := map[string]report.Dialog{}
	for _, d := range s.SIP.Dialogs {
		got[d.CallID] = d
	}
	for id, want := range map[string][2]string{
		"nobody@x":   {"timeout", "timeout: no response to the INVITE within 32 s"},
		"silent@x":   {"timeout", "RTP stopped"},
		"ringing@x":  {"no final response", "no final response to the INVITE"},
		"upstream@x": {"BYE", "5 % loss on the upstream leg (to 203.0.113.5:53000)"},
	} {
		if d := got[id]; d.Ended != want[0] || !strings.Contains(d.Verdict, want[1]) {
			t.Errorf("%s: ended %q verdict %q, want %q and %q", id, d.Ended, d.Verdict, want[0], want[1])
		}
	}
	for _, w := range []string{"timeout: no response", "RTP stopped 3"} {
		found := false
		for _, f := range s.Findings {
			found = found || strings.Contains(f.Text, w) && f.Severity == "error"
		}
		if !found {
			t.Errorf("no error finding %q in %+v", w, s.Findings)
		}
	}
}

// TestDNSOverTCPMatchesTshark: DNS over TCP with length prefixes alone in
// a segment, split across segments, two messages in one segment, a query
// never answered and a response sent twice, beside DNS over UDP: counted
// as tshark's dns,tree counts them (with its TCP reassembly) and as the
// generator injected them.
func TestDNSOverTCPMatchesTshark(t *testing.T) {
	if testing.Short() {
		t.Skip("tshark: not under -short")
	}
	g := reporttest.New(7)
	tr := &reporttest.Truth{RTP: map[uint32]reporttest.RTPTruth{}, DNSRcodes: map[string]uint64{}}
	g.DNS(tr, 0, 12)
	g.DNSOverTCP(tr, 500*time.Millisecond)
	path := g.WritePCAP(t, "dnstcp.pcap")
	s := reportcheck.Read(t, path, report.Options{})
	reportcheck.Compare(t, s, reportcheck.Stats(t, path))
	if s.DNS.Queries != tr.DNSQueries || s.DNS.Unanswered != tr.DNSUnanswered || fmt.Sprint(s.DNS.Rcodes) != fmt.Sprint(tr.DNSRcodes) {
		t.Errorf("DNS: queries %d unanswered %d rcodes %v, injected %d %d %v", s.DNS.Queries, s.DNS.Unanswered, s.DNS.Rcodes,
			tr.DNSQueries, tr.DNSUnanswered, tr.DNSRcodes)
	}
	if s.DNS.TCPMessages != 7 || s.DNS.TCPLost != 0 || s.DNS.Malformed != 0 {
		t.Errorf("DNS over TCP: %d messages, %d lost, %d malformed; want 7 (4 queries, 3 responses), 0, 0", s.DNS.TCPMessages, s.DNS.TCPLost, s.DNS.Malformed)
	}
	if s.TCP.Retransmissions != tr.TCPRetrans || s.TCP.Connections != tr.TCPConnections {
		t.Errorf("TCP: %d retransmissions %d connections, injected %d %d", s.TCP.Retransmissions, s.TCP.Connections, tr.TCPRetrans, tr.TCPConnections)
	}
}

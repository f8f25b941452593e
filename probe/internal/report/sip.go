package report

import (
	"bytes"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// SIP messages are decoded with gopacket's SIP layer; their SDP bodies
// (RFC 8866) here, for the media addresses (c=, m=) and codecs (a=rtpmap).

type dialogState struct {
	Dialog
	methods    map[string]bool
	inviteAt   int64
	answeredAt int64
	final      int
	media      []netip.AddrPort
	reInviteAt int64
	responded  bool // any response to the first INVITE, provisional too
}

type sipTable struct {
	max     int
	layer   layers.SIP
	stats   SIPStats
	dialogs map[string]*dialogState
	order   []string
	dropped uint64
}

func (t *sipTable) init(max int) {
	t.max = max
	t.dialogs = map[string]*dialogState{}
	t.stats.Requests = map[string]uint64{}
	t.stats.Responses = map[string]uint64{}
	t.stats.Provisional = map[string]uint64{}
}

// maxCodeKeys bounds the response and method tables against garbage.
const maxCodeKeys = 64

func bump(m map[string]uint64, k string) {
	if _, ok := m[k]; ok || len(m) < maxCodeKeys {
		m[k]++
	}
}

func (t *sipTable) add(b []byte, pi packetInfo, src, dst netip.AddrPort, rtp *rtpTable) {
	if len(b) == 0 {
		return
	}
	if err := t.layer.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil || t.layer.Method == layers.SIPMethod(0) && !t.layer.IsResponse {
		t.stats.Malformed++
		return
	}
	s := &t.layer
	t.stats.Messages++
	method := s.Method.String()
	if s.IsResponse {
		code := strconv.Itoa(s.ResponseCode)
		if s.ResponseCode < 200 {
			bump(t.stats.Provisional, code)
		} else {
			bump(t.stats.Responses, code)
		}
		// The CSeq names the method a response answers.
		if f := strings.Fields(s.GetFirstHeader("cseq")); len(f) == 2 {
			method = strings.ToUpper(f[1])
		}
	} else {
		bump(t.stats.Requests, method)
	}
	id := s.GetCallID()
	if id == "" {
		return
	}
	d := t.dialogs[id]
	if d == nil {
		if len(t.dialogs) >= t.max {
			t.dropped++
			return
		}
		d = &dialogState{methods: map[string]bool{}}
		d.CallID, d.From, d.To = clip(id), clip(s.GetFrom()), clip(s.GetTo())
		d.First = stamp(pi.ts)
		t.dialogs[id] = d
		t.order = append(t.order, id)
	}
	d.Last = stamp(pi.ts)
	switch {
	case !s.IsResponse:
		if len(d.methods) < maxCodeKeys {
			d.methods[method] = true
		}
		switch s.Method {
		case layers.SIPMethodInvite:
			if d.inviteAt == 0 {
				d.inviteAt = pi.ts
			} else if d.answeredAt != 0 && pi.ts > d.answeredAt {
				d.ReInvites++
				d.reInviteAt = pi.ts
			}
		case layers.SIPMethodBye:
			if d.Ended == "" {
				d.Ended = "BYE"
			}
		case layers.SIPMethodCancel:
			if d.Ended == "" {
				d.Ended = "CANCEL"
			}
		}
	case method == "INVITE" && s.ResponseCode < 200:
		d.responded = true
	case method == "INVITE" && s.ResponseCode >= 200 && d.final == 0:
		d.responded = true
		d.final = s.ResponseCode
		if s.ResponseCode < 300 {
			d.answeredAt = pi.ts
		}
	}
	if body := s.Payload(); len(body) > 0 && strings.Contains(strings.ToLower(s.GetFirstHeader("content-type")), "sdp") {
		for _, ap := range t.sdp(body, id, rtp) {
			if len(d.media) < 8 && !containsAP(d.media, ap) {
				d.media = append(d.media, ap)
			}
		}
	}
}

func containsAP(l []netip.AddrPort, ap netip.AddrPort) bool {
	for _, x := range l {
		if x == ap {
			return true
		}
	}
	return false
}

// clip bounds strings copied from packets.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200]
	}
	return s
}

// sdp reads the media of one SDP body and announces them to the RTP table.
func (t *sipTable) sdp(body []byte, callID string, rtp *rtpTable) []netip.AddrPort {
	var session netip.Addr
	type mline struct {
		addr  netip.Addr
		port  uint16
		media *media
	}
	var ms []mline
	for _, line := range bytes.Split(body, []byte("\n")) {
		line = bytes.TrimRight(line, "\r")
		if len(line) < 2 || line[1] != '=' {
			continue
		}
		val := string(line[2:])
		switch line[0] {
		case 'c':
			// c=IN IP4 192.0.2.1 (a multicast TTL suffix is cut)
			f := strings.Fields(val)
			if len(f) == 3 {
				a, err := netip.ParseAddr(strings.SplitN(f[2], "/", 2)[0])
				if err == nil {
					if len(ms) == 0 {
						session = a
					} else {
						ms[len(ms)-1].addr = a
					}
				}
			}
		case 'm':
			// m=audio 49170 RTP/AVP 0 8 101
			f := strings.Fields(val)
			if len(f) >= 3 && strings.HasPrefix(f[2], "RTP/") {
				p, err := strconv.ParseUint(strings.SplitN(f[1], "/", 2)[0], 10, 16)
				if err == nil && p != 0 {
					ms = append(ms, mline{port: uint16(p), media: &media{callID: clip(callID), codecs: map[uint8]codec{}}})
				}
			}
		case 'a':
			// a=rtpmap:101 telephone-event/8000
			if rest, ok := strings.CutPrefix(val, "rtpmap:"); ok && len(ms) > 0 {
				f := strings.Fields(rest)
				if len(f) < 2 || len(ms[len(ms)-1].media.codecs) >= 32 {
					continue
				}
				pt, err := strconv.ParseUint(f[0], 10, 7)
				if err != nil {
					continue
				}
				enc := strings.Split(f[1], "/")
				c := codec{name: clip(enc[0])}
				if len(enc) > 1 {
					if r, err := strconv.ParseUint(enc[1], 10, 32); err == nil {
						c.rate = uint32(r)
					}
				}
				ms[len(ms)-1].media.codecs[uint8(pt)] = c
			}
		}
	}
	var out []netip.AddrPort
	for _, m := range ms {
		a := m.addr
		if !a.IsValid() {
			a = session
		}
		if !a.IsValid() {
			continue
		}
		ap := netip.AddrPortFrom(a, m.port)
		rtp.announce(ap, m.media)
		out = append(out, ap)
	}
	return out
}

func (t *sipTable) summary(first, last int64, streams []RTPStream) SIPStats {
	st := t.stats
	st.Dialogs = nil
	for _, id := range t.order {
		d := t.dialogs[id]
		dl := d.Dialog
		for m := range d.methods {
			dl.Methods = append(dl.Methods, m)
		}
		sort.Strings(dl.Methods)
		dl.FinalCode = d.final
		for _, ap := range d.media {
			dl.Media = append(dl.Media, ap.String())
		}
		if d.inviteAt != 0 {
			st.Calls++
			if d.answeredAt != 0 {
				dl.SetupMs = float64(d.answeredAt-d.inviteAt) / 1e6
			}
			switch {
			case d.final >= 300:
				st.Failed++
				if dl.Ended == "" {
					dl.Ended = "failed"
				}
			case d.final == 0 && dl.Ended == "" && !d.responded && last-d.inviteAt >= sipTimerB:
				dl.Ended = "timeout"
			case d.final == 0 && dl.Ended == "":
				dl.Ended = "no final response"
			case dl.Ended == "" && rtpStopped(d, streams, last):
				dl.Ended = "timeout"
			}
		}
		dl.Verdict = verdict(d, streams, last)
		for _, s := range streams {
			if s.CallID == d.CallID {
				dl.StreamsIn = append(dl.StreamsIn, s.SSRC)
			}
		}
		st.Dialogs = append(st.Dialogs, dl)
	}
	return st
}

// Timeouts (RFC 3261 §17.1.1.2): an INVITE without any response is given
// up after Timer B, 64·T1 = 32 s. An answered call whose media all
// stopped rtpTimeout before the window's end with no BYE counts as ended
// by timeout too: a phone or PBX hung up on silence, or the line died.
const (
	sipTimerB  = 32e9
	rtpTimeout = 5e9
)

// callRTP is the last RTP packet time of the streams to the call's media
// (0: none).
func callRTP(d *dialogState, streams []RTPStream) int64 {
	var last int64
	for _, ap := range d.media {
		for _, s := range streams {
			if s.Dst == ap.String() {
				last = max(last, s.Last.UnixNano())
			}
		}
	}
	return last
}

// rtpStopped says whether an answered call's RTP began and then stopped
// rtpTimeout or more before the window's end.
func rtpStopped(d *dialogState, streams []RTPStream, last int64) bool {
	l := callRTP(d, streams)
	return d.answeredAt != 0 && l != 0 && last-l >= rtpTimeout && l > d.reInviteAt
}

// leg names the direction of the media sent to ap: a private (RFC 1918,
// ULA) address is the customer's side, so media to it is the downstream
// leg and media from it to a public one the upstream leg.
func leg(ap netip.AddrPort, media []netip.AddrPort) string {
	priv := func(a netip.Addr) bool { return a.IsPrivate() || a.IsLinkLocalUnicast() }
	others := false
	for _, m := range media {
		if m != ap && priv(m.Addr()) != priv(ap.Addr()) {
			others = true
		}
	}
	switch {
	case others && priv(ap.Addr()):
		return "the downstream leg (to " + ap.String() + ")"
	case others:
		return "the upstream leg (to " + ap.String() + ")"
	}
	return "the leg to " + ap.String()
}

// verdict is the one line an engineer wants about a call.
func verdict(d *dialogState, streams []RTPStream, last int64) string {
	if d.inviteAt == 0 {
		return "no call (no INVITE in the window)"
	}
	switch {
	case d.final >= 300:
		return fmt.Sprintf("call failed: %d", d.final)
	case d.final == 0 && d.Ended == "CANCEL":
		return "call cancelled before answer"
	case d.final == 0 && !d.responded && last-d.inviteAt >= sipTimerB:
		return "timeout: no response to the INVITE within 32 s"
	case d.final == 0:
		return "no final response to the INVITE"
	}
	// Per media address announced: the streams sent to it.
	var parts []string
	toAny := 0
	var lastRTP int64
	for _, ap := range d.media {
		var pkts uint64
		var expected, lost int64
		for _, s := range streams {
			if s.Dst == ap.String() {
				pkts += s.Packets
				expected += s.Expected
				lost += s.Lost
				lastRTP = max(lastRTP, s.Last.UnixNano())
			}
		}
		if pkts == 0 {
			parts = append(parts, "no RTP on "+leg(ap, d.media))
			continue
		}
		toAny++
		if expected > 0 && lost*100 >= expected {
			parts = append(parts, fmt.Sprintf("%d %% loss on %s", lost*100/expected, leg(ap, d.media)))
		}
	}
	if len(d.media) >= 2 && toAny == 1 {
		parts = append([]string{"one-way audio"}, parts...)
	}
	if d.reInviteAt != 0 && lastRTP != 0 && lastRTP < d.reInviteAt {
		parts = append(parts, "no RTP after re-INVITE")
	} else if d.Ended == "" && rtpStopped(d, streams, last) {
		parts = append(parts, fmt.Sprintf("RTP stopped %.0f s before the window's end without BYE (timeout)", float64(last-lastRTP)/1e9))
	}
	if len(parts) == 0 {
		if d.Ended != "" {
			return "answered, ended by " + d.Ended
		}
		return "answered, media flowing"
	}
	return strings.Join(parts, "; ")
}

package report

import (
	"encoding/binary"
	"net/netip"

	"github.com/gopacket/gopacket/layers"
)

// DNS over TCP (RFC 1035 §4.2.2, RFC 7766): each message is preceded by
// its length in two bytes, and a message may be split across segments or
// share one with others. Each direction of a connection to or from port 53
// is reassembled in sequence order; bytes are copied only for a message
// that spans segments, so memory stays at most dnsTCPFlows partial
// messages.

const (
	dnsTCPFlows  = 64            // directions with a partial message at once
	dnsTCPMaxBuf = 2 + 65535 + 1 // one whole message and its length
)

type dnsTCPKey struct{ src, dst netip.AddrPort }

type dnsTCPFlow struct {
	next uint32 // the sequence number expected next
	buf  []byte // the start of a message whose end has not come yet
}

type dnsTCP struct {
	flows map[dnsTCPKey]*dnsTCPFlow
	// Lost counts directions whose stream had a hole (a segment not
	// captured, or sliced) or too many partial messages at once: the
	// message cut by it is not counted.
	lost uint64
}

// add takes one TCP segment of a DNS connection; each whole message goes to
// msg. seglen is the segment's length on the wire.
func (d *dnsTCP) add(h *layers.TCP, seglen int, src, dst netip.AddrPort, msg func([]byte)) {
	if d.flows == nil {
		d.flows = map[dnsTCPKey]*dnsTCPFlow{}
	}
	k := dnsTCPKey{src, dst}
	f := d.flows[k]
	payload, seq := h.Payload, h.Seq
	switch {
	case h.SYN:
		// A new connection (or a reused port): start afresh after the SYN.
		delete(d.flows, k)
		f, seq = nil, seq+1
		if len(payload) == 0 {
			if d.room() {
				d.flows[k] = &dnsTCPFlow{next: seq}
			}
			return
		}
	case h.RST:
		delete(d.flows, k)
		return
	}
	if len(payload) < seglen {
		// Sliced: the rest of the stream cannot be told from here on.
		if f != nil && len(f.buf) > 0 {
			d.lost++
		}
		delete(d.flows, k)
		return
	}
	if f == nil {
		if len(payload) == 0 {
			return
		}
		if !d.room() {
			d.lost++
			return
		}
		// Joined mid-stream (the SYN before the window): take the segment
		// for the start of a message, as Wireshark does.
		f = &dnsTCPFlow{next: seq}
		d.flows[k] = f
	}
	if seqLT(seq, f.next) {
		// Part or all of it was seen: a retransmission.
		skip := f.next - seq
		if uint32(len(payload)) <= skip {
			return
		}
		payload, seq = payload[skip:], f.next
	}
	if seq != f.next {
		// A hole: what was partial is lost; the segment may start a message.
		if len(f.buf) > 0 {
			d.lost++
		}
		f.buf = f.buf[:0]
	}
	f.next = seq + uint32(len(payload))
	if h.FIN {
		f.next++
	}
	for len(f.buf) > 0 {
		// Complete the partial message first: its length, then its body.
		if len(f.buf) < 2 {
			take := min(2-len(f.buf), len(payload))
			f.buf, payload = append(f.buf, payload[:take]...), payload[take:]
			if len(f.buf) < 2 {
				return
			}
		}
		take := min(2+int(binary.BigEndian.Uint16(f.buf))-len(f.buf), len(payload))
		f.buf, payload = append(f.buf, payload[:take]...), payload[take:]
		if len(f.buf) < 2+int(binary.BigEndian.Uint16(f.buf)) {
			return
		}
		msg(f.buf[2:])
		f.buf = f.buf[:0]
	}
	for len(payload) >= 2 {
		n := int(binary.BigEndian.Uint16(payload))
		if len(payload) < 2+n {
			break
		}
		msg(payload[2 : 2+n])
		payload = payload[2+n:]
	}
	if len(payload) > 0 {
		f.buf = append(f.buf[:0], payload...)
		if cap(f.buf) > dnsTCPMaxBuf {
			f.buf = nil
		}
	}
	if h.FIN && len(f.buf) == 0 {
		delete(d.flows, k)
	}
}

// room makes room for one more direction if there is none, forgetting the
// ones with no partial message (they resume from their next segment).
func (d *dnsTCP) room() bool {
	if len(d.flows) < dnsTCPFlows {
		return true
	}
	for k, f := range d.flows {
		if len(f.buf) == 0 {
			delete(d.flows, k)
		}
	}
	return len(d.flows) < dnsTCPFlows
}

package pcapfile

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strings"

	"github.com/presscap/presscap/ringfs"
)

// Packet is one packet read from a file. Data is only valid until the next
// call of Next.
type Packet struct {
	Time    int64 // Unix ns
	Iface   int   // index into Interfaces()
	OrigLen uint32
	Data    []byte
}

// maxPacket bounds a record's captured length: anything larger is corruption.
const maxPacket = 1 << 24

// Reader reads classic pcap (micro- or nanosecond, either byte order) and
// pcapng files. Errors name the packet number and the byte offset.
type Reader struct {
	r     *bufio.Reader
	off   int64 // bytes consumed
	n     int   // packets returned
	order binary.ByteOrder
	ng    bool
	nano  bool
	snap  uint32

	ifaces  []Interface
	res     []tsres // per interface (pcapng)
	secBase int     // first interface index of the current pcapng section
	buf     []byte
}

type tsres struct {
	pow2   bool
	exp    uint8
	offset int64 // if_tsoffset, seconds
}

// NewReader reads the file header and returns a reader positioned at the
// first packet.
func NewReader(r io.Reader) (*Reader, error) {
	p := &Reader{r: bufio.NewReaderSize(r, bufSize)}
	magic, err := p.r.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("capture file header: %s", short(err, 0, 4))
	}
	switch {
	case binary.LittleEndian.Uint32(magic) == 0x0a0d0d0a:
		p.ng = true
		if err := p.ngBlocksUntilPacket(nil); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return p, nil
	}
	h := make([]byte, 24)
	if err := p.full(h); err != nil {
		return nil, fmt.Errorf("pcap file header: %s", short(err, 0, 24))
	}
	switch {
	case binary.LittleEndian.Uint32(h) == magicMicro:
		p.order = binary.LittleEndian
	case binary.LittleEndian.Uint32(h) == magicNano:
		p.order, p.nano = binary.LittleEndian, true
	case binary.BigEndian.Uint32(h) == magicMicro:
		p.order = binary.BigEndian
	case binary.BigEndian.Uint32(h) == magicNano:
		p.order, p.nano = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("not a pcap or pcapng file: magic bytes % x at byte 0", h[:4])
	}
	if v := p.order.Uint16(h[4:]); v != 2 {
		return nil, fmt.Errorf("pcap file header: major version %d at byte 4, want 2", v)
	}
	p.snap = p.order.Uint32(h[16:])
	p.ifaces = []Interface{{LinkType: p.order.Uint32(h[20:]) & 0x0fffffff, SnapLen: p.snap}}
	return p, nil
}

// Interfaces returns the interfaces seen so far (pcapng files may declare
// more later; Packet.Iface is always valid for them).
func (p *Reader) Interfaces() []Interface { return p.ifaces }

// Next returns the next packet, or io.EOF at the end of the file.
func (p *Reader) Next() (Packet, error) {
	if p.ng {
		var pk Packet
		err := p.ngBlocksUntilPacket(&pk)
		return pk, err
	}
	start := p.off
	h, err := p.r.Peek(16)
	if err != nil {
		if len(h) == 0 && errors.Is(err, io.EOF) {
			return Packet{}, io.EOF
		}
		return Packet{}, fmt.Errorf("packet %d at byte %d: record header %s", p.n+1, start, short(io.ErrUnexpectedEOF, int64(len(h)), 16))
	}
	o := p.order
	sec, frac := int64(o.Uint32(h[0:])), int64(o.Uint32(h[4:]))
	capLen, origLen := o.Uint32(h[8:]), o.Uint32(h[12:])
	if capLen > maxPacket || capLen > max(p.snap, DefaultSnapLen) {
		return Packet{}, fmt.Errorf("packet %d at byte %d: captured length %d exceeds the snap length %d: corrupt file", p.n+1, start, capLen, p.snap)
	}
	if !p.nano {
		if frac >= 1e6 {
			return Packet{}, fmt.Errorf("packet %d at byte %d: microseconds field %d is not below 1000000: corrupt file", p.n+1, start, frac)
		}
		frac *= 1000
	} else if frac >= 1e9 {
		return Packet{}, fmt.Errorf("packet %d at byte %d: nanoseconds field %d is not below 1000000000: corrupt file", p.n+1, start, frac)
	}
	p.r.Discard(16) // Peeked: cannot fail
	p.off += 16
	data, err := p.take(int(capLen))
	if err != nil {
		return Packet{}, fmt.Errorf("packet %d at byte %d: data %s", p.n+1, start, short(err, 0, int64(capLen)))
	}
	p.n++
	return Packet{Time: sec*1e9 + frac, OrigLen: max(origLen, capLen), Data: data}, nil
}

func (p *Reader) full(b []byte) error {
	n, err := io.ReadFull(p.r, b)
	p.off += int64(n)
	return err
}

// take returns the next n bytes, from the read buffer itself when they fit
// in it (valid until the next read, as Packet.Data is), else copied.
func (p *Reader) take(n int) ([]byte, error) {
	if n <= p.r.Size() {
		b, err := p.r.Peek(n)
		if err != nil {
			p.r.Discard(len(b))
			p.off += int64(len(b))
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		p.r.Discard(n)
		p.off += int64(n)
		return b, nil
	}
	if cap(p.buf) < n {
		p.buf = make([]byte, n)
	}
	b := p.buf[:n]
	if err := p.full(b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

func short(err error, got, want int64) string {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Sprintf("truncated: the file ends %d bytes into %d", got, want)
	}
	return err.Error()
}

// ngBlocksUntilPacket reads pcapng blocks, handling section headers and
// interface descriptions, until it has a packet (pk != nil) or, with pk nil,
// until the next block is a packet block.
func (p *Reader) ngBlocksUntilPacket(pk *Packet) error {
	for {
		start := p.off
		hdr, err := p.r.Peek(8)
		if len(hdr) == 0 && errors.Is(err, io.EOF) {
			return io.EOF
		}
		if err != nil {
			return fmt.Errorf("pcapng block at byte %d: %s", start, short(io.ErrUnexpectedEOF, int64(len(hdr)), 8))
		}
		typ := binary.LittleEndian.Uint32(hdr)
		if typ == 0x0a0d0d0a {
			bom, err := p.r.Peek(12)
			if err != nil {
				return fmt.Errorf("pcapng section header at byte %d: %s", start, short(io.ErrUnexpectedEOF, int64(len(bom)), 12))
			}
			switch {
			case binary.LittleEndian.Uint32(bom[8:]) == 0x1a2b3c4d:
				p.order = binary.LittleEndian
			case binary.BigEndian.Uint32(bom[8:]) == 0x1a2b3c4d:
				p.order = binary.BigEndian
			default:
				return fmt.Errorf("pcapng section header at byte %d: bad byte-order magic % x", start, bom[8:12])
			}
			p.secBase = len(p.ifaces)
		} else if p.order == nil {
			return fmt.Errorf("pcapng block at byte %d: no section header first", start)
		} else {
			typ = p.order.Uint32(hdr)
		}
		if pk == nil && (typ == 6 || typ == 3 || typ == 2) {
			return nil
		}
		total := p.order.Uint32(hdr[4:])
		if total < 12 || total%4 != 0 || total > maxPacket+1024 {
			return fmt.Errorf("pcapng block type %#x at byte %d: bad block length %d: corrupt file", typ, start, total)
		}
		b, err := p.take(int(total))
		if err != nil {
			return fmt.Errorf("pcapng block type %#x at byte %d: %s", typ, start, short(err, 0, int64(total)))
		}
		if t := p.order.Uint32(b[total-4:]); t != total {
			return fmt.Errorf("pcapng block type %#x at byte %d: trailing length %d differs from %d: corrupt file", typ, start, t, total)
		}
		body := b[8 : total-4]
		switch typ {
		case 0x0a0d0d0a:
			if len(body) < 16 {
				return fmt.Errorf("pcapng section header at byte %d: too short", start)
			}
		case 1:
			if err := p.ngInterface(body, start); err != nil {
				return err
			}
		case 6, 2:
			return p.ngPacket(typ, body, start, pk)
		case 3:
			if len(p.ifaces) == p.secBase {
				return fmt.Errorf("packet %d at byte %d: simple packet block before any interface", p.n+1, start)
			}
			if len(body) < 4 {
				return fmt.Errorf("packet %d at byte %d: simple packet block too short", p.n+1, start)
			}
			orig := p.order.Uint32(body)
			capLen := min(orig, uint32(len(body)-4), snapOf(p.ifaces[p.secBase]))
			p.n++
			*pk = Packet{Iface: p.secBase, OrigLen: orig, Data: body[4 : 4+capLen]}
			return nil
		}
	}
}

// maxDescription bounds an interface description read from a file.
const maxDescription = 200

func (p *Reader) ngInterface(body []byte, start int64) error {
	if len(body) < 8 {
		return fmt.Errorf("pcapng interface description at byte %d: too short", start)
	}
	ifc := Interface{LinkType: uint32(p.order.Uint16(body)), SnapLen: p.order.Uint32(body[4:])}
	res := tsres{exp: 6}
	opts := body[8:]
	for len(opts) >= 4 {
		code, l := p.order.Uint16(opts), int(p.order.Uint16(opts[2:]))
		if code == 0 {
			break
		}
		if 4+l > len(opts) {
			return fmt.Errorf("pcapng interface description at byte %d: option %d overruns the block", start, code)
		}
		v := opts[4 : 4+l]
		at := start + 8 + int64(len(body)-len(opts)+4) // the option's value, in the file
		switch {
		case code == 2 && l > 0:
			// The name becomes a ring link's name, shown and stored by
			// the probe: it must be one a ring accepts.
			if err := ringfs.CheckLinkName(string(v)); err != nil {
				return fmt.Errorf("pcapng interface description at byte %d: if_name at byte %d: %w", start, at, err)
			}
			ifc.Name = string(v)
		case code == 3 && l > 0:
			// if_description: the port's side in our files; shown, never
			// acted on, and clipped.
			ifc.Description = strings.ToValidUTF8(string(v[:min(l, maxDescription)]), "?")
		case code == 9 && l >= 1:
			res.pow2, res.exp = v[0]&0x80 != 0, v[0]&0x7f
			if (!res.pow2 && res.exp > 18) || (res.pow2 && res.exp > 63) {
				return fmt.Errorf("pcapng interface description at byte %d: unsupported if_tsresol %#x", start, v[0])
			}
		case code == 14 && l >= 8:
			res.offset = int64(p.order.Uint64(v))
			if res.offset > maxSec || res.offset < -maxSec {
				return fmt.Errorf("pcapng interface description at byte %d: if_tsoffset %d at byte %d is out of range (more than %d seconds)", start, res.offset, at, maxSec)
			}
		}
		opts = opts[4+(l+3)/4*4:]
	}
	p.ifaces = append(p.ifaces, ifc)
	p.res = append(p.res, res)
	return nil
}

func (p *Reader) ngPacket(typ uint32, body []byte, start int64, pk *Packet) error {
	if len(body) < 20 {
		return fmt.Errorf("packet %d at byte %d: packet block too short", p.n+1, start)
	}
	var iface int
	if typ == 2 {
		iface = int(p.order.Uint16(body))
	} else {
		iface = int(p.order.Uint32(body))
	}
	ts := uint64(p.order.Uint32(body[4:]))<<32 | uint64(p.order.Uint32(body[8:]))
	capLen, orig := p.order.Uint32(body[12:]), p.order.Uint32(body[16:])
	if iface < 0 || p.secBase+iface >= len(p.ifaces) {
		return fmt.Errorf("packet %d at byte %d: interface %d was not described", p.n+1, start, iface)
	}
	if uint64(capLen) > uint64(len(body)-20) {
		return fmt.Errorf("packet %d at byte %d: captured length %d overruns the block: corrupt file", p.n+1, start, capLen)
	}
	iface += p.secBase
	t, ok := p.res[iface].nanos(ts)
	if !ok {
		return fmt.Errorf("packet %d at byte %d: timestamp %d plus if_tsoffset %d of interface %d is outside the years 1678 to 2262", p.n+1, start, ts, p.res[iface].offset, iface-p.secBase)
	}
	p.n++
	*pk = Packet{Time: t, Iface: iface, OrigLen: max(orig, capLen), Data: body[20 : 20+capLen]}
	return nil
}

// maxSec is the largest number of seconds whose nanoseconds, plus a
// fraction, fit in int64 (Unix nanoseconds end in 2262).
const maxSec = math.MaxInt64/1_000_000_000 - 1

// nanos converts a timestamp in r's resolution to Unix nanoseconds; false
// when the result (offset included) does not fit.
func (r tsres) nanos(ts uint64) (int64, bool) {
	var sec, ns uint64
	if r.pow2 {
		sec = ts >> r.exp
		frac := ts & (1<<r.exp - 1)
		if r.exp > 0 {
			// frac·10⁹ / 2^exp, through 128 bits: the quotient fits in 64.
			hi, lo := bits.Mul64(frac, 1e9)
			ns = hi<<(64-r.exp) | lo>>r.exp
		}
	} else {
		unit := uint64(1)
		for range r.exp {
			unit *= 10
		}
		sec, ns = ts/unit, ts%unit
		switch {
		case r.exp <= 9:
			for range 9 - r.exp {
				ns *= 10
			}
		default:
			for range r.exp - 9 {
				ns /= 10
			}
		}
	}
	if sec > maxSec {
		return 0, false
	}
	s := int64(sec) + r.offset // both within ±maxSec: no overflow
	if s > maxSec || s < -maxSec {
		return 0, false
	}
	return s*1e9 + int64(ns), true
}

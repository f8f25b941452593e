// Package pcapfile reads and writes packet capture files: classic libpcap
// files (written with nanosecond timestamps) and pcapng. It is what turns ring
// windows into files for tcpdump, tshark and Wireshark, and what `probe ring
// import` reads.
//
// It is our own rather than gopacket's pcapgo, which writes and reads the same
// formats, because pcapgo costs more a packet on the same frames in the same
// run (BenchmarkInterleaved, figures in docs/dev/benchmarks.md): 1.7 times
// for classic pcap and 2.4 times for pcapng, whose writer also allocates for
// each packet with epb_flags; its readers take 1.3 and 1.6 times as long and
// do not name the packet and byte of bad input or check the if_name a ring
// link is made from.
package pcapfile

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Interface describes one capture interface of a file.
type Interface struct {
	Name     string
	LinkType uint32 // pcap LINKTYPE_ value
	SnapLen  uint32 // 0 means 262144
	// Description goes into pcapng's if_description (the port's side of
	// the bridge); classic pcap has no place for it.
	Description string
	// Inbound: every packet arrived on the interface (a bridge port
	// captured inbound only), which pcapng's epb_flags says of each.
	Inbound bool
}

// DefaultSnapLen is written when an interface has no snap length.
const DefaultSnapLen = 262144

const (
	magicMicro = 0xa1b2c3d4
	magicNano  = 0xa1b23c4d
	bufSize    = 256 << 10
)

// PacketWriter writes packets to a capture file. iface indexes the
// interfaces the writer was created with. Flush must be called at the end.
type PacketWriter interface {
	WritePacket(iface int, ts int64, origLen uint32, data []byte) error
	Flush() error
}

// NewWriter returns a writer for format "pcap" (classic, nanosecond
// timestamps; every interface must have the same link type) or "pcapng"
// (one interface description block per interface; comment, if not empty, goes
// into the section header).
func NewWriter(w io.Writer, format string, ifaces []Interface, comment string) (PacketWriter, error) {
	switch format {
	case "pcap", "":
		if len(ifaces) == 0 {
			return nil, errors.New("pcap writer: no interface")
		}
		var snap uint32
		for _, ifc := range ifaces {
			if ifc.LinkType != ifaces[0].LinkType {
				return nil, fmt.Errorf("classic pcap holds one link type, but interface %q has %d and %q has %d (use pcapng)",
					ifaces[0].Name, ifaces[0].LinkType, ifc.Name, ifc.LinkType)
			}
			snap = max(snap, snapOf(ifc))
		}
		pw, err := NewPCAP(w, ifaces[0].LinkType, snap)
		if err != nil {
			return nil, err
		}
		return multiPCAP{pw, len(ifaces)}, nil
	case "pcapng":
		nw, err := NewPCAPNG(w, comment)
		if err != nil {
			return nil, err
		}
		for _, ifc := range ifaces {
			if _, err := nw.AddInterface(ifc); err != nil {
				return nil, err
			}
		}
		return nw, nil
	}
	return nil, fmt.Errorf("unknown capture file format %q (want pcap or pcapng)", format)
}

type multiPCAP struct {
	*PCAPWriter
	n int
}

func (m multiPCAP) WritePacket(iface int, ts int64, origLen uint32, data []byte) error {
	if iface < 0 || iface >= m.n {
		return fmt.Errorf("pcap writer: interface %d out of range", iface)
	}
	return m.PCAPWriter.WritePacket(ts, origLen, data)
}

func snapOf(ifc Interface) uint32 {
	if ifc.SnapLen == 0 {
		return DefaultSnapLen
	}
	return ifc.SnapLen
}

// PCAPWriter writes a classic libpcap file with nanosecond timestamps.
type PCAPWriter struct {
	w    *bufio.Writer
	snap uint32
	hdr  [16]byte
}

// NewPCAP writes the file header and returns the writer.
func NewPCAP(w io.Writer, linkType, snapLen uint32) (*PCAPWriter, error) {
	if snapLen == 0 {
		snapLen = DefaultSnapLen
	}
	p := &PCAPWriter{w: bufio.NewWriterSize(w, bufSize), snap: snapLen}
	var h [24]byte
	le := binary.LittleEndian
	le.PutUint32(h[0:], magicNano)
	le.PutUint16(h[4:], 2)
	le.PutUint16(h[6:], 4)
	le.PutUint32(h[16:], snapLen)
	le.PutUint32(h[20:], linkType)
	if _, err := p.w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("pcap header: %w", err)
	}
	return p, nil
}

// WritePacket writes one packet; ts is Unix nanoseconds. Packets longer than
// the snap length are cut to it, keeping origLen.
func (p *PCAPWriter) WritePacket(ts int64, origLen uint32, data []byte) error {
	if uint32(len(data)) > p.snap {
		data = data[:p.snap]
	}
	origLen = max(origLen, uint32(len(data)))
	sec, nsec := splitTime(ts)
	le := binary.LittleEndian
	le.PutUint32(p.hdr[0:], uint32(sec))
	le.PutUint32(p.hdr[4:], uint32(nsec))
	le.PutUint32(p.hdr[8:], uint32(len(data)))
	le.PutUint32(p.hdr[12:], origLen)
	if _, err := p.w.Write(p.hdr[:]); err != nil {
		return err
	}
	_, err := p.w.Write(data)
	return err
}

// Flush writes buffered data to the underlying writer.
func (p *PCAPWriter) Flush() error { return p.w.Flush() }

// splitTime splits Unix ns into seconds and nanoseconds; classic pcap cannot
// hold times before 1970 or after 2106, which are clamped.
func splitTime(ts int64) (sec, nsec int64) {
	if ts < 0 {
		return 0, 0
	}
	sec, nsec = ts/1e9, ts%1e9
	if sec > 0xffffffff {
		return 0xffffffff, 999999999
	}
	return sec, nsec
}

// NGWriter writes a pcapng file: one section, nanosecond timestamps on every
// interface.
type NGWriter struct {
	w      *bufio.Writer
	ifaces []Interface
	buf    []byte
	tail   [8]byte // in the struct: on the stack it escapes through bufio, an allocation a packet
}

// NewPCAPNG writes the section header block and returns the writer.
func NewPCAPNG(w io.Writer, comment string) (*NGWriter, error) {
	n := &NGWriter{w: bufio.NewWriterSize(w, bufSize)}
	body := make([]byte, 16)
	le := binary.LittleEndian
	le.PutUint32(body[0:], 0x1a2b3c4d)
	le.PutUint16(body[4:], 1)
	le.PutUint16(body[6:], 0)
	le.PutUint64(body[8:], 0xffffffffffffffff) // section length unknown
	var opts []byte
	if comment != "" {
		opts = appendOption(opts, 1, []byte(comment))
	}
	opts = appendOption(opts, 4, []byte("presscap")) // shb_userappl
	opts = appendOption(opts, 0, nil)
	if err := n.block(0x0a0d0d0a, body, opts); err != nil {
		return nil, fmt.Errorf("pcapng section header: %w", err)
	}
	return n, nil
}

// AddInterface writes an interface description block and returns its index.
func (n *NGWriter) AddInterface(ifc Interface) (int, error) {
	body := make([]byte, 8)
	le := binary.LittleEndian
	le.PutUint16(body[0:], uint16(ifc.LinkType))
	le.PutUint32(body[4:], snapOf(ifc))
	var opts []byte
	if ifc.Name != "" {
		opts = appendOption(opts, 2, []byte(ifc.Name)) // if_name
	}
	if ifc.Description != "" {
		opts = appendOption(opts, 3, []byte(ifc.Description)) // if_description
	}
	opts = appendOption(opts, 9, []byte{9}) // if_tsresol: 10^-9
	opts = appendOption(opts, 0, nil)
	if err := n.block(1, body, opts); err != nil {
		return 0, fmt.Errorf("pcapng interface %q: %w", ifc.Name, err)
	}
	n.ifaces = append(n.ifaces, ifc)
	return len(n.ifaces) - 1, nil
}

// WritePacket writes an enhanced packet block.
func (n *NGWriter) WritePacket(iface int, ts int64, origLen uint32, data []byte) error {
	if iface < 0 || iface >= len(n.ifaces) {
		return fmt.Errorf("pcapng writer: interface %d out of range", iface)
	}
	if s := snapOf(n.ifaces[iface]); uint32(len(data)) > s {
		data = data[:s]
	}
	origLen = max(origLen, uint32(len(data)))
	pad := (4 - len(data)%4) % 4
	total := 32 + len(data) + pad
	inbound := n.ifaces[iface].Inbound
	if inbound {
		total += len(epbInbound)
	}
	b := n.buf[:0]
	le := binary.LittleEndian
	b = le.AppendUint32(b, 6)
	b = le.AppendUint32(b, uint32(total))
	b = le.AppendUint32(b, uint32(iface))
	t := uint64(max(ts, 0))
	b = le.AppendUint32(b, uint32(t>>32))
	b = le.AppendUint32(b, uint32(t))
	b = le.AppendUint32(b, uint32(len(data)))
	b = le.AppendUint32(b, origLen)
	n.buf = b
	if _, err := n.w.Write(b); err != nil {
		return err
	}
	if _, err := n.w.Write(data); err != nil {
		return err
	}
	tail := n.tail[:]
	clear(tail)
	if pad > 0 {
		if _, err := n.w.Write(tail[:pad]); err != nil {
			return err
		}
	}
	if inbound {
		if _, err := n.w.Write(epbInbound); err != nil {
			return err
		}
	}
	le.PutUint32(tail, uint32(total))
	_, err := n.w.Write(tail[:4])
	return err
}

// epbInbound is the options of a packet that arrived on its interface:
// epb_flags (2) with direction 01 (inbound), then opt_endofopt.
var epbInbound = appendOption(appendOption(nil, 2, binary.LittleEndian.AppendUint32(nil, 1)), 0, nil)

// Flush writes buffered data to the underlying writer.
func (n *NGWriter) Flush() error { return n.w.Flush() }

func (n *NGWriter) block(typ uint32, body, opts []byte) error {
	total := 12 + len(body) + len(opts)
	le := binary.LittleEndian
	b := le.AppendUint32(nil, typ)
	b = le.AppendUint32(b, uint32(total))
	b = append(b, body...)
	b = append(b, opts...)
	b = le.AppendUint32(b, uint32(total))
	_, err := n.w.Write(b)
	return err
}

func appendOption(b []byte, code uint16, val []byte) []byte {
	le := binary.LittleEndian
	b = le.AppendUint16(b, code)
	b = le.AppendUint16(b, uint16(len(val)))
	b = append(b, val...)
	return append(b, make([]byte, (4-len(val)%4)%4)...)
}

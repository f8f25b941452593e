package export

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/presscap/presscap/probe/internal/filter"
	"github.com/presscap/presscap/probe/internal/pcapfile"
	"github.com/presscap/presscap/ringfs"
)

// SetupError is a cut that fails the same way on every try: a filter that
// does not compile, a link the ring does not hold, a format that cannot
// hold the links. Anything else (the disk, the ring's reads) may mend.
type SetupError struct {
	// Field is the spec's field at fault: "filter", "link" or "format".
	Field string
	Err   error
}

func (e *SetupError) Error() string { return e.Err.Error() }
func (e *SetupError) Unwrap() error { return e.Err }

// Cutter is the one way a window is cut out of the ring, for the service's
// exports and for `probe extract`: it maps the ring's links to each output
// file's interfaces, reads the window once for all the files, and writes
// each record into every file whose links and filter take it.
type Cutter struct {
	Outs []*Out
	// Unknown counts the records of links the ring gained after the cutter
	// was made (a recorder adding one while the window is read): no file
	// takes them.
	Unknown uint64

	nlinks int
}

// Out is one output file of a cut.
type Out struct {
	Spec Spec
	// Ifaces are the file's interfaces: the ring links Spec takes, in the
	// ring's order.
	Ifaces []pcapfile.Interface
	// W writes the file (see Cutter.Open); it buffers on its own.
	W pcapfile.PacketWriter
	// Packets and Bytes count what the file took (a resumed file starts
	// from its earlier counts).
	Packets, Bytes uint64

	links map[uint16]int // ring link id → index in Ifaces
	m     *filter.Matcher
}

// NewCutter makes a cut of a ring with these links into one file per spec.
// meaning is what the specs' filters mean: filter.Live is tcpdump -i's
// meaning on the link (the capture put the outer VLAN tag back into the
// stored frame; the service's exports), filter.Offline tcpdump -r's on a
// capture file of the stored frames (`probe extract -filter`). Errors are
// *SetupError.
func NewCutter(links []ringfs.Link, specs []Spec, meaning filter.Mode) (*Cutter, error) {
	c := &Cutter{nlinks: len(links)}
	for _, spec := range specs {
		o := &Out{Spec: spec, links: map[uint16]int{}}
		if spec.Filter != "" {
			var m *filter.Matcher
			var err error
			if meaning == filter.Live {
				m, err = filter.NewLiveMatcher(spec.Filter)
			} else {
				m, err = filter.NewMatcher(spec.Filter)
			}
			if err != nil {
				return nil, fmt.Errorf("export %s: %w", spec.Name, &SetupError{Field: "filter", Err: err})
			}
			o.m = m
		}
		for id, l := range links {
			if spec.Link != "" && !spec.selects(l.Name) {
				continue
			}
			o.links[uint16(id)] = len(o.Ifaces)
			sd := spec.Sides[l.Name]
			o.Ifaces = append(o.Ifaces, pcapfile.Interface{Name: l.Name, LinkType: l.LinkType, SnapLen: l.SnapLen,
				Description: sd.Side, Inbound: sd.Inbound})
		}
		if len(o.Ifaces) == 0 {
			return nil, fmt.Errorf("export %s: %w", spec.Name, &SetupError{Field: "link", Err: noLink(links, spec.Link)})
		}
		if formatOf(spec) == "pcap" {
			for _, ifc := range o.Ifaces[1:] {
				if first := o.Ifaces[0]; ifc.LinkType != first.LinkType {
					return nil, fmt.Errorf("export %s: %w", spec.Name, &SetupError{Field: "format", Err: fmt.Errorf(
						"links %q (link type %d) and %q (%d) cannot share a classic pcap file: select one link or use pcapng",
						first.Name, first.LinkType, ifc.Name, ifc.LinkType)})
				}
			}
		}
		c.Outs = append(c.Outs, o)
	}
	return c, nil
}

// noLink says that the ring holds no link named link, or none at all.
func noLink(links []ringfs.Link, link string) error {
	if len(links) == 0 {
		return fmt.Errorf("the ring has no links yet (nothing was ever recorded)")
	}
	names := make([]string, len(links))
	for i, l := range links {
		names[i] = l.Name
	}
	return fmt.Errorf("link %q is not in the ring (it has: %s)", link, strings.Join(names, ", "))
}

// Open starts output i's file on w in its spec's format, with comment
// (pcapng only) in the header.
func (c *Cutter) Open(i int, w io.Writer, comment string) error {
	o := c.Outs[i]
	pw, err := pcapfile.NewWriter(w, formatOf(o.Spec), o.Ifaces, comment)
	if err != nil {
		return err
	}
	o.W = pw
	return nil
}

// Read reads the window [from, to) (Unix ns) of ring from pos on (see
// ringfs.Ring.Follow: a zero pos with push reads the whole window, as
// ringfs.Ring.Read does) and writes each record into the files that take
// it. after, if not nil, is called for every record of the window with the
// number of files that took it.
func (c *Cutter) Read(ctx context.Context, ring *ringfs.Ring, from, to int64, pos *ringfs.Pos, push bool,
	after func(r ringfs.Record, files int) error) (ringfs.ReadStats, error) {
	return ring.Follow(ctx, from, to, pos, push, func(r ringfs.Record) error {
		if int(r.Link) >= c.nlinks {
			c.Unknown++
			return nil
		}
		n := 0
		for _, o := range c.Outs {
			idx, ok := o.links[r.Link]
			if !ok {
				continue
			}
			// len, less and greater judge the length on the wire, also
			// for packets a ring rule sliced.
			if o.m != nil && !o.m.MatchLen(r.Data, int(r.OrigLen)) {
				continue
			}
			if err := o.W.WritePacket(idx, r.Time, r.OrigLen, r.Data); err != nil {
				return fmt.Errorf("export %s: %w", o.Spec.Name, err)
			}
			o.Packets++
			o.Bytes += uint64(len(r.Data))
			n++
		}
		if after != nil {
			return after(r, n)
		}
		return nil
	})
}

// Flush hands what the files' writers buffer to their files.
func (c *Cutter) Flush() error {
	for _, o := range c.Outs {
		if err := o.W.Flush(); err != nil {
			return fmt.Errorf("export %s: %w", o.Spec.Name, err)
		}
	}
	return nil
}

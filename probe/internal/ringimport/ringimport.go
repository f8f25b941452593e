// Package ringimport reads capture files (pcap, pcapng) into a ring. Every
// file is read to its end and checked against the ring first, so that a bad
// file, or a clash found in the last one, adds nothing.
package ringimport

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/presscap/presscap/probe/internal/pcapfile"
	"github.com/presscap/presscap/ringfs"
)

// Options are an import's choices.
type Options struct {
	// Fallback names the link of a file interface that has no name (probe
	// ring import's -link); NewPlan must have been given the same.
	Fallback string
	// SyncEvery, if positive, flushes the ring every that many packets
	// and calls Durable with the count made durable (for crash tests).
	SyncEvery int
	Durable   func(n int)
}

// Import appends every packet of files to r, whose Plan Fits r. It returns
// how many packets it appended; an error names the file and how far it got.
func Import(ctx context.Context, r *ringfs.Ring, files []string, o Options) (int, error) {
	var total int
	for _, name := range files {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		ids := map[int]uint16{}
		n, err := forEachPacket(name, func(p pcapfile.Packet, ifaces []pcapfile.Interface) error {
			id, ok := ids[p.Iface]
			if !ok {
				var err error
				if id, err = r.AddLink(linkOf(ifaces[p.Iface], o.Fallback)); err != nil {
					return err
				}
				ids[p.Iface] = id
			}
			if err := r.Append(ringfs.Record{Time: p.Time, Link: id, OrigLen: p.OrigLen, Data: p.Data}); err != nil {
				return err
			}
			total++
			if o.SyncEvery > 0 && total%o.SyncEvery == 0 {
				if err := r.Flush(); err != nil {
					return err
				}
				if o.Durable != nil {
					o.Durable(total)
				}
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("%s: after %d packets: %w", name, n, err)
		}
	}
	return total, nil
}

func linkOf(ifc pcapfile.Interface, fallback string) ringfs.Link {
	name := ifc.Name
	if name == "" {
		name = fallback
	}
	return ringfs.Link{Name: name, LinkType: ifc.LinkType, SnapLen: ifc.SnapLen}
}

// Plan is what an import will ask of the ring: the links its packets
// use and its largest packet.
type Plan struct {
	links   []ringfs.Link
	from    []string // the file that first uses links[i]
	maxData int
	maxAt   string // the file and packet of the largest packet
}

// NewPlan reads every file to its end: a file that does not read to its
// end, or two interfaces of one link name with different link types, is
// an error before anything is imported.
func NewPlan(files []string, fallback string) (*Plan, error) {
	if err := ringfs.CheckLinkName(fallback); err != nil {
		return nil, fmt.Errorf("link name for unnamed interfaces: %w", err)
	}
	pl := &Plan{}
	byName := map[string]int{}
	for _, name := range files {
		used := map[int]bool{}
		k := 0
		_, err := forEachPacket(name, func(p pcapfile.Packet, ifaces []pcapfile.Interface) error {
			k++
			if len(p.Data) > pl.maxData {
				pl.maxData, pl.maxAt = len(p.Data), fmt.Sprintf("%s: packet %d", name, k)
			}
			if used[p.Iface] {
				return nil
			}
			used[p.Iface] = true
			l := linkOf(ifaces[p.Iface], fallback)
			if i, ok := byName[l.Name]; !ok {
				byName[l.Name] = len(pl.links)
				pl.links = append(pl.links, l)
				pl.from = append(pl.from, name)
			} else if pl.links[i].LinkType != l.LinkType {
				return fmt.Errorf("%s: link %q has link type %d, but %d in %s (choose another name with -link)", name, l.Name, l.LinkType, pl.links[i].LinkType, pl.from[i])
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return pl, nil
}

// Fits checks the plan against the ring's links and block size.
func (pl *Plan) Fits(r *ringfs.Ring) error {
	have := r.Links()
	fresh := 0
	for i, l := range pl.links {
		j := slices.IndexFunc(have, func(h ringfs.Link) bool { return h.Name == l.Name })
		switch {
		case j < 0:
			fresh++
		case have[j].LinkType != l.LinkType:
			return fmt.Errorf("%s: link %q has link type %d in the ring but %d in the file (choose another name with -link)", pl.from[i], l.Name, have[j].LinkType, l.LinkType)
		}
	}
	if len(have)+fresh > 1<<16 {
		return fmt.Errorf("the ring has %d links and the files add %d: more than %d", len(have), fresh, 1<<16)
	}
	if limit := r.MaxData(); pl.maxData > limit {
		return fmt.Errorf("%s: %d bytes do not fit the ring's blocks (at most %d)", pl.maxAt, pl.maxData, limit)
	}
	return nil
}

// forEachPacket reads a capture file to its end, calling fn (if not nil)
// for every packet, and returns how many packets it read.
func forEachPacket(name string, fn func(pcapfile.Packet, []pcapfile.Interface) error) (int, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	rd, err := pcapfile.NewReader(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	n := 0
	for {
		p, err := rd.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("%s: %w", name, err)
		}
		if fn != nil {
			if err := fn(p, rd.Interfaces()); err != nil {
				return n, err
			}
		}
		n++
	}
}

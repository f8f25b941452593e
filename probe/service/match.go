package service

import (
	"encoding/binary"
	"fmt"

	"github.com/presscap/presscap/probe/filter"
	"golang.org/x/net/bpf"
)

// liveMatcher applies an export filter with the meaning `tcpdump -i` gives
// it on the interface, to frames as the ring stores them.
//
// On an AF_PACKET socket the kernel strips the outer VLAN tag and reports
// it out of band, and libpcap's live programs test it with the kernel's BPF
// extensions; the capture puts the tag back into the stored frame, as
// libpcap does when writing a file. So a filter run on the stored frame
// (the Offline program) would not select what tcpdump -i selected: "ether
// proto 0x88b5" matches tagged frames live, not in a file. liveMatcher
// undoes the reinsertion and runs the Live program with the tag as the
// extensions report it.
//
// x/net/bpf's VM implements no VLAN extension, so each program is
// specialised per out-of-band state (tag present, tag value; and the wire
// length when the expression tests it) and the specialisations are cached.
// A liveMatcher is for one goroutine (an export makes its own).
type liveMatcher struct {
	expr    string
	prog    []bpf.Instruction
	usesLen bool
	cache   map[uint64]*bpf.VM
	scratch []byte // the frame without its outer tag
}

func newLiveMatcher(expr string) (*liveMatcher, error) {
	prog, err := filter.Compile(expr, filter.Live, filter.MaxSnap)
	if err != nil {
		return nil, err
	}
	m := &liveMatcher{expr: expr, prog: prog, cache: map[uint64]*bpf.VM{}}
	for _, in := range prog {
		if e, ok := in.(bpf.LoadExtension); ok {
			switch e.Num {
			case bpf.ExtLen:
				m.usesLen = true
			case bpf.ExtVLANTag, bpf.ExtVLANTagPresent:
			default:
				return nil, fmt.Errorf("filter %q: BPF extension %d is not supported on stored frames", expr, e.Num)
			}
		}
	}
	if _, err := m.vm(0, 0, 0); err != nil {
		return nil, fmt.Errorf("filter %q: %w", expr, err)
	}
	return m, nil
}

// vm returns the program specialised for one out-of-band state.
func (m *liveMatcher) vm(present, tci uint32, wireLen int) (*bpf.VM, error) {
	key := uint64(present)<<16 | uint64(tci)
	if m.usesLen {
		key |= uint64(wireLen) << 32
	}
	if vm := m.cache[key]; vm != nil {
		return vm, nil
	}
	p := make([]bpf.Instruction, len(m.prog))
	for i, in := range m.prog {
		p[i] = in
		if e, ok := in.(bpf.LoadExtension); ok {
			switch e.Num {
			case bpf.ExtVLANTagPresent:
				p[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: present}
			case bpf.ExtVLANTag:
				p[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: tci}
			case bpf.ExtLen:
				p[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: uint32(wireLen)}
			}
		}
	}
	vm, err := bpf.NewVM(p)
	if err != nil {
		return nil, err
	}
	if len(m.cache) >= 8192 {
		clear(m.cache) // many distinct lengths: start over
	}
	m.cache[key] = vm
	return vm, nil
}

// Match reports whether the filter accepts the stored frame whose length
// on the wire was wireLen.
func (m *liveMatcher) Match(frame []byte, wireLen int) bool {
	var present, tci uint32
	if len(frame) >= 18 {
		if tpid := binary.BigEndian.Uint16(frame[12:]); tpid == 0x8100 || tpid == 0x88a8 {
			present, tci = 1, uint32(binary.BigEndian.Uint16(frame[14:]))
			m.scratch = append(append(m.scratch[:0], frame[:12]...), frame[16:]...)
			frame = m.scratch
			wireLen -= 4
		}
	}
	vm, err := m.vm(present, tci, wireLen)
	if err != nil {
		return false
	}
	n, err := vm.Run(frame)
	return err == nil && n > 0
}

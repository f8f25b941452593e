package capture

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Classic BPF encoding, as the kernel reads it.
const (
	opRetK     = 0x06       // BPF_RET | BPF_K
	opLdBAbs   = 0x30       // BPF_LD | BPF_B | BPF_ABS
	opJeqK     = 0x15       // BPF_JMP | BPF_JEQ | BPF_K
	opJA       = 0x05       // BPF_JMP | BPF_JA
	classMask  = 0x07       // BPF_CLASS
	classJmp   = 0x05       // BPF_JMP
	skfAdOff   = 0xfffff000 // SKF_AD_OFF
	skfVLANTag = 48         // SKF_AD_VLAN_TAG_PRESENT
	// minVLANSnap: snap lengths up to this stay as they are, so that the
	// kernel always keeps the two MAC addresses the tag goes behind.
	minVLANSnap = 16
)

// adjustVLANSnap rewrites every `ret #k` of a socket program so that a
// packet whose VLAN tag the kernel stripped is cut 4 bytes shorter. After
// the tag is put back the frame is then cut exactly at k bytes of the wire
// frame, as libpcap cuts it: min(len-4, k-4)+4 = min(len, k). Cutting in
// userspace instead would need to know which rule (and so which snap
// length) matched.
//
// Each `ret #k` becomes
//
//	ldb  [vlan_tag_present]
//	jeq  #1, +0, +1
//	ret  #k-4
//	ret  #k
//
// and every jump is re-aimed at its instruction's new place.
func adjustVLANSnap(prog []bpf.RawInstruction) ([]bpf.RawInstruction, error) {
	newIdx := make([]int, len(prog)+1)
	n := 0
	for i, ins := range prog {
		newIdx[i] = n
		if ins.Op == opRetK && ins.K > minVLANSnap {
			n += 4
		} else {
			n++
		}
	}
	newIdx[len(prog)] = n
	if n > 4096 {
		return nil, fmt.Errorf("filter program of %d instructions is too long once VLAN snap lengths are added (%d > 4096)", len(prog), n)
	}
	out := make([]bpf.RawInstruction, 0, n)
	for i, ins := range prog {
		if ins.Op == opRetK && ins.K > minVLANSnap {
			out = append(out,
				bpf.RawInstruction{Op: opLdBAbs, K: skfAdOff + skfVLANTag},
				bpf.RawInstruction{Op: opJeqK, Jt: 0, Jf: 1, K: 1},
				bpf.RawInstruction{Op: opRetK, K: ins.K - 4},
				bpf.RawInstruction{Op: opRetK, K: ins.K},
			)
			continue
		}
		if ins.Op&classMask == classJmp {
			at := newIdx[i] + 1
			if ins.Op == opJA {
				t := i + 1 + int(ins.K)
				if t > len(prog) {
					return nil, fmt.Errorf("filter instruction %d jumps out of the program", i)
				}
				ins.K = uint32(newIdx[t] - at)
			} else {
				tt, tf := i+1+int(ins.Jt), i+1+int(ins.Jf)
				if tt > len(prog) || tf > len(prog) {
					return nil, fmt.Errorf("filter instruction %d jumps out of the program", i)
				}
				jt, jf := newIdx[tt]-at, newIdx[tf]-at
				if jt > 255 || jf > 255 {
					return nil, fmt.Errorf("filter instruction %d: jump too long once VLAN snap lengths are added", i)
				}
				ins.Jt, ins.Jf = uint8(jt), uint8(jf)
			}
		}
		out = append(out, ins)
	}
	return out, nil
}

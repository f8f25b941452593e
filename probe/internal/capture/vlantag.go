package capture

import (
	"unsafe"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/afpacket"
	"golang.org/x/sys/unix"
)

// The kernel's struct tpacket3_hdr, which precedes every packet in a
// TPACKET_V3 block (linux/if_packet.h), by byte offset.
const (
	tp3Snaplen  = 12 // __u32 tp_snaplen
	tp3Status   = 20 // __u32 tp_status
	tp3Mac      = 24 // __u16 tp_mac: offset of the frame from the header
	tp3VLANTCI  = 32 // __u32 hv1.tp_vlan_tci
	tp3VLANTPID = 36 // __u16 hv1.tp_vlan_tpid
	// The frame of a SOCK_RAW socket starts at tp_mac =
	// TPACKET_ALIGN(TPACKET3_HDRLEN + max(maclen, 16)) - maclen, with
	// TPACKET3_HDRLEN = 68; for link headers up to 44 bytes that lies in
	// [68, 96], and for Ethernet (maclen 14) it is 82.
	tp3MacEthernet = 82
	tp3MacMin      = 68
	tp3MacMax      = 96
)

// hasVLAN reports whether the kernel stripped a VLAN tag from the packet
// (TP_STATUS_VLAN_VALID: gopacket then reports the VLAN id) and returns
// that id.
func hasVLAN(ci *gopacket.CaptureInfo) (vid int, ok bool) {
	for _, a := range ci.AncillaryData {
		if v, isVLAN := a.(afpacket.AncillaryVLAN); isVLAN {
			return v.VLAN, true
		}
	}
	return 0, false
}

// vlanFromHeader reads the stripped tag's TCI and TPID from the kernel's
// packet header in the socket's ring, which gopacket does not pass on
// (it reports only the VLAN id; it can put the whole tag back, but only by
// allocating a copy of every tagged frame). data must be the frame exactly
// as it lies in the ring (gopacket's zero-copy read without
// OptAddVLANHeader).
//
// The header is found by its distance from the frame: every candidate
// distance is checked against the header's own tp_mac and tp_snaplen
// before anything else is believed. All candidates lie inside the ring:
// the real header starts at least 48 bytes into its block, so reading
// from up to 28 bytes before it stays in the mapped block.
func vlanFromHeader(data []byte) (tci, tpid uint16, ok bool) {
	if len(data) == 0 {
		return 0, 0, false
	}
	frame := unsafe.Pointer(unsafe.SliceData(data))
	try := func(k int) bool {
		h := unsafe.Add(frame, -k)
		if int(*(*uint16)(unsafe.Add(h, tp3Mac))) != k || int(*(*uint32)(unsafe.Add(h, tp3Snaplen))) != len(data) {
			return false
		}
		status := *(*uint32)(unsafe.Add(h, tp3Status))
		tci = uint16(*(*uint32)(unsafe.Add(h, tp3VLANTCI)))
		if status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
			tpid = *(*uint16)(unsafe.Add(h, tp3VLANTPID))
		}
		return true
	}
	if try(tp3MacEthernet) {
		return tci, tpid, true
	}
	for k := tp3MacMin; k <= tp3MacMax; k++ {
		if k != tp3MacEthernet && try(k) {
			return tci, tpid, true
		}
	}
	return 0, 0, false
}

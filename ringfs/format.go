package ringfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// On-disk format. All integers are little-endian.
//
// Segment file (segmentSize bytes, preallocated):
//
//	[0, pageSize)            segment header
//	[pageSize, dataOff)      index area: entry k (64 bytes) describes block k
//	[dataOff, segmentSize)   data area: blocks, each pageSize-aligned, back to back
//
// Format 2 (ring.json "presscap-ring/2") added the gap record, the block's
// key epoch and flags, the index entry's flags and sealed payloads; a ring
// of format 1 is refused (ErrNotRing) as ErrOldFormat, so that its owner
// can replace it (Remove).
//
// Segment header: magic[8] "PRSEG002", crc u32 (over bytes 12..64), reserved u32,
// ringID u64, gen u64 (≥ 1; 0 = never used), firstSeq u64.
//
// Block: an 80-byte header, records, zero padding up to blockLen (a multiple of
// pageSize). Header: magic u32, crc u32 (CRC32C of the payload followed by
// header bytes 8..80, so the payload's part is computed while the block waits
// for its place in the ring),
// gen u32, nrec u32, seq u64, tmin i64, tmax i64, payloadLen u32, blockLen u32,
// packets u32, epoch u32, bytes u64, drops u64, flags u32, reserved u32.
// payloadLen counts the payload as stored: in a sealed ring (ring.json
// "encrypted") the records' ciphertext followed by the AEAD's tag; the
// checksum covers the stored bytes, so a torn block is found without the key.
// epoch is the key's writer epoch in a sealed ring (0 otherwise); flags bit 0
// says the block holds a gap record.
//
// Record: time i64, origLen u32, capLen u32, link u16, kind u16, then capLen
// bytes. kind 0 is a packet; kind 1 is a drop report whose 8 data bytes hold
// the number of packets lost; kind 2 is a gap: the link was down from the
// first i64 of its 16 data bytes to the second (0: not back yet).
//
// Index entry: crc u32 (over bytes 4..64), blockLen/4096 u16, flags u16,
// gen u32, packets u32, seq u64, off u64, tmin i64, tmax i64, bytes u64, drops u64.
const (
	pageSize       = 4096
	segMagic       = "PRSEG002"
	blockMagic     = 0x32425250 // "PRB2"
	blockHdrSize   = 80
	recHdrSize     = 20
	indexEntrySize = 64

	kindPacket = 0
	kindDrops  = 1
	kindGap    = 2

	gapDataLen = 16

	// flagGaps marks a block (header and index entry) holding a gap
	// record, so that Gaps reads only those blocks.
	flagGaps = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// blockHeader is the decoded header of a block.
type blockHeader struct {
	gen        uint32
	nrec       uint32
	seq        uint64
	tmin, tmax int64
	payloadLen uint32
	blockLen   uint32
	packets    uint32
	epoch      uint32
	bytes      uint64
	drops      uint64
	flags      uint32
}

// payloadCRC is the first part of a block's checksum.
func payloadCRC(b []byte, payloadLen uint32) uint32 {
	return crc32.Checksum(b[blockHdrSize:blockHdrSize+int(payloadLen)], castagnoli)
}

// putBlockHeader encodes h into b; pcrc is payloadCRC of the block.
func putBlockHeader(b []byte, h *blockHeader, pcrc uint32) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], blockMagic)
	le.PutUint32(b[8:], h.gen)
	le.PutUint32(b[12:], h.nrec)
	le.PutUint64(b[16:], h.seq)
	le.PutUint64(b[24:], uint64(h.tmin))
	le.PutUint64(b[32:], uint64(h.tmax))
	le.PutUint32(b[40:], h.payloadLen)
	le.PutUint32(b[44:], h.blockLen)
	le.PutUint32(b[48:], h.packets)
	le.PutUint32(b[52:], h.epoch)
	le.PutUint64(b[56:], h.bytes)
	le.PutUint64(b[64:], h.drops)
	le.PutUint32(b[72:], h.flags)
	le.PutUint32(b[76:], 0)
	le.PutUint32(b[4:], crc32.Update(pcrc, castagnoli, b[8:blockHdrSize]))
}

// parseBlockHeader decodes a header without checking the payload's checksum;
// it is what recovery uses to walk blocks cheaply.
func parseBlockHeader(b []byte) (blockHeader, error) {
	var h blockHeader
	if len(b) < blockHdrSize {
		return h, fmt.Errorf("block header: %d bytes, need %d", len(b), blockHdrSize)
	}
	le := binary.LittleEndian
	if m := le.Uint32(b[0:]); m != blockMagic {
		return h, fmt.Errorf("block header: bad magic %#08x", m)
	}
	h.gen = le.Uint32(b[8:])
	h.nrec = le.Uint32(b[12:])
	h.seq = le.Uint64(b[16:])
	h.tmin = int64(le.Uint64(b[24:]))
	h.tmax = int64(le.Uint64(b[32:]))
	h.payloadLen = le.Uint32(b[40:])
	h.blockLen = le.Uint32(b[44:])
	h.packets = le.Uint32(b[48:])
	h.epoch = le.Uint32(b[52:])
	h.bytes = le.Uint64(b[56:])
	h.drops = le.Uint64(b[64:])
	h.flags = le.Uint32(b[72:])
	if h.blockLen == 0 || h.blockLen%pageSize != 0 {
		return h, fmt.Errorf("block header: block length %d is not a positive multiple of %d", h.blockLen, pageSize)
	}
	if uint64(h.payloadLen)+blockHdrSize > uint64(h.blockLen) {
		return h, fmt.Errorf("block header: payload length %d does not fit block length %d", h.payloadLen, h.blockLen)
	}
	if h.tmin > h.tmax {
		return h, fmt.Errorf("block header: time range min %d > max %d", h.tmin, h.tmax)
	}
	return h, nil
}

var errChecksum = errors.New("checksum mismatch")

// decodeBlock checks a whole block (header, checksum, every record's bounds)
// and calls fn for each record in append order. It never returns a record of
// a block that fails any check: validation completes before the first call.
// rec.Data aliases b.
func decodeBlock(b []byte, fn func(kind uint16, r Record) error) (blockHeader, error) {
	h, err := checkBlock(b)
	if err != nil {
		return h, err
	}
	end := blockHdrSize + int(h.payloadLen)
	// Validate all record bounds first so fn never sees part of a bad block.
	if err := walkRecords(b[blockHdrSize:end], h, nil); err != nil {
		return h, err
	}
	if fn == nil {
		return h, nil
	}
	return h, walkRecords(b[blockHdrSize:end], h, fn)
}

// checkBlock checks a block's header and its checksum over the stored
// bytes (in a sealed ring, the ciphertext).
func checkBlock(b []byte) (blockHeader, error) {
	h, err := parseBlockHeader(b)
	if err != nil {
		return h, err
	}
	end := blockHdrSize + int(h.payloadLen)
	if end > len(b) {
		return h, fmt.Errorf("block %d: payload ends at byte %d, only %d read", h.seq, end, len(b))
	}
	got := crc32.Update(payloadCRC(b, h.payloadLen), castagnoli, b[8:blockHdrSize])
	if want := binary.LittleEndian.Uint32(b[4:]); got != want {
		return h, fmt.Errorf("block %d: %w (stored %#08x, computed %#08x)", h.seq, errChecksum, want, got)
	}
	return h, nil
}

func walkRecords(p []byte, h blockHeader, fn func(kind uint16, r Record) error) error {
	le := binary.LittleEndian
	off := 0
	var n, packets uint32
	var gaps bool
	for off < len(p) {
		if len(p)-off < recHdrSize {
			return fmt.Errorf("block %d: record %d: header truncated at payload byte %d", h.seq, n, off)
		}
		r := Record{
			Time:    int64(le.Uint64(p[off:])),
			OrigLen: le.Uint32(p[off+8:]),
			Link:    le.Uint16(p[off+16:]),
		}
		capLen := le.Uint32(p[off+12:])
		kind := le.Uint16(p[off+18:])
		if uint64(capLen) > uint64(len(p)-off-recHdrSize) {
			return fmt.Errorf("block %d: record %d: captured length %d overruns the payload at byte %d", h.seq, n, capLen, off)
		}
		if r.Time < h.tmin || r.Time > h.tmax {
			return fmt.Errorf("block %d: record %d: time %d outside the block's range [%d, %d]", h.seq, n, r.Time, h.tmin, h.tmax)
		}
		switch kind {
		case kindPacket:
			packets++
		case kindDrops:
			if capLen != 8 {
				return fmt.Errorf("block %d: record %d: drop report with %d data bytes, want 8", h.seq, n, capLen)
			}
		case kindGap:
			if capLen != gapDataLen {
				return fmt.Errorf("block %d: record %d: gap with %d data bytes, want %d", h.seq, n, capLen, gapDataLen)
			}
			gaps = true
		default:
			return fmt.Errorf("block %d: record %d: unknown kind %d", h.seq, n, kind)
		}
		off += recHdrSize
		r.Data = p[off : off+int(capLen) : off+int(capLen)]
		off += int(capLen)
		n++
		if fn != nil {
			if err := fn(kind, r); err != nil {
				return err
			}
		}
	}
	if n != h.nrec || packets != h.packets {
		return fmt.Errorf("block %d: holds %d records (%d packets), header says %d (%d)", h.seq, n, packets, h.nrec, h.packets)
	}
	if gaps != (h.flags&flagGaps != 0) {
		return fmt.Errorf("block %d: gap records %v, header flags %#x", h.seq, gaps, h.flags)
	}
	return nil
}

// putRecord encodes r at b, which must have room for recHdrSize+len(r.Data).
func putRecord(b []byte, kind uint16, r *Record) int {
	le := binary.LittleEndian
	le.PutUint64(b[0:], uint64(r.Time))
	le.PutUint32(b[8:], r.OrigLen)
	le.PutUint32(b[12:], uint32(len(r.Data)))
	le.PutUint16(b[16:], r.Link)
	le.PutUint16(b[18:], kind)
	return recHdrSize + copy(b[recHdrSize:], r.Data)
}

// segHeader is the decoded header page of a segment.
type segHeader struct {
	ringID   uint64
	gen      uint64
	firstSeq uint64
}

func putSegHeader(b []byte, h segHeader) {
	le := binary.LittleEndian
	clear(b[:64])
	copy(b, segMagic)
	le.PutUint64(b[16:], h.ringID)
	le.PutUint64(b[24:], h.gen)
	le.PutUint64(b[32:], h.firstSeq)
	le.PutUint32(b[8:], crc32.Checksum(b[12:64], castagnoli))
}

func parseSegHeader(b []byte) (segHeader, bool) {
	le := binary.LittleEndian
	if len(b) < 64 || string(b[:8]) != segMagic || le.Uint32(b[8:]) != crc32.Checksum(b[12:64], castagnoli) {
		return segHeader{}, false
	}
	h := segHeader{ringID: le.Uint64(b[16:]), gen: le.Uint64(b[24:]), firstSeq: le.Uint64(b[32:])}
	return h, h.gen != 0
}

// entry is the in-memory index entry of one block.
type entry struct {
	off        int64 // byte offset in the segment file
	blockLen   uint32
	packets    uint32
	tmin, tmax int64
	bytes      uint64
	drops      uint64
	flags      uint16
	pmax       int64 // largest tmax of this and all earlier blocks of the segment
}

func putIndexEntry(b []byte, gen uint32, seq uint64, e *entry) {
	le := binary.LittleEndian
	le.PutUint16(b[4:], uint16(e.blockLen/pageSize))
	le.PutUint16(b[6:], e.flags)
	le.PutUint32(b[8:], gen)
	le.PutUint32(b[12:], e.packets)
	le.PutUint64(b[16:], seq)
	le.PutUint64(b[24:], uint64(e.off))
	le.PutUint64(b[32:], uint64(e.tmin))
	le.PutUint64(b[40:], uint64(e.tmax))
	le.PutUint64(b[48:], e.bytes)
	le.PutUint64(b[56:], e.drops)
	le.PutUint32(b[0:], crc32.Checksum(b[4:indexEntrySize], castagnoli))
}

func parseIndexEntry(b []byte) (gen uint32, seq uint64, e entry, ok bool) {
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != crc32.Checksum(b[4:indexEntrySize], castagnoli) {
		return 0, 0, e, false
	}
	e.blockLen = uint32(le.Uint16(b[4:])) * pageSize
	e.flags = le.Uint16(b[6:])
	gen = le.Uint32(b[8:])
	e.packets = le.Uint32(b[12:])
	seq = le.Uint64(b[16:])
	e.off = int64(le.Uint64(b[24:]))
	e.tmin = int64(le.Uint64(b[32:]))
	e.tmax = int64(le.Uint64(b[40:]))
	e.bytes = le.Uint64(b[48:])
	e.drops = le.Uint64(b[56:])
	return gen, seq, e, e.blockLen != 0 && e.tmin <= e.tmax
}

func entryFromHeader(off int64, h *blockHeader) entry {
	return entry{off: off, blockLen: h.blockLen, packets: h.packets, tmin: h.tmin, tmax: h.tmax, bytes: h.bytes, drops: h.drops, flags: uint16(h.flags)}
}

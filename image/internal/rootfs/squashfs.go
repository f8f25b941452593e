package rootfs

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// Squashfs 4.0 layout constants (see the kernel's fs/squashfs/squashfs_fs.h).
const (
	sqMagic         = 0x73717368
	sqMetadataSize  = 8192
	sqCompressGzip  = 1
	sqBlockLog      = 17 // log2(BlockSize)
	sqInvalid       = ^uint64(0)
	sqNoFragment    = 0xFFFFFFFF
	sqUncompressed  = 1 << 24 // data block size flag
	sqMetaRaw       = 0x8000  // metadata block header flag
	sqSuperblock    = 96
	sqTypeDir       = 1
	sqTypeFile      = 2
	sqTypeSymlink   = 3
	sqFlagRawInodes = 0x0001
	sqFlagNoFrags   = 0x0010
	sqFlagNoXattrs  = 0x0200
	sqFlagRawIDs    = 0x0800
	sqMaxDirEntries = 256
)

type sqNode struct {
	name     string
	e        *entry
	children []*sqNode
	ino      uint32
	ref      uint64 // inode reference: metadata block start << 16 | offset
	// file data
	start  uint64
	sizes  []uint32
	length uint64
}

func sqType(e *entry) uint16 {
	switch e.kind {
	case kindDir:
		return sqTypeDir
	case kindSymlink:
		return sqTypeSymlink
	}
	return sqTypeFile
}

// metaRef converts a position in an uncompressed metadata stream into the
// reference the format uses. Every metadata block is stored uncompressed,
// so block k starts at k × (2 + 8192).
func metaRef(pos int) (block uint32, offset uint16) {
	return uint32(pos/sqMetadataSize) * (2 + sqMetadataSize), uint16(pos % sqMetadataSize)
}

// metaBlocks splits a metadata stream into stored (uncompressed) blocks.
func metaBlocks(b []byte) []byte {
	var out []byte
	for len(b) > 0 {
		n := len(b)
		if n > sqMetadataSize {
			n = sqMetadataSize
		}
		out = binary.LittleEndian.AppendUint16(out, uint16(n)|sqMetaRaw)
		out = append(out, b[:n]...)
		b = b[n:]
	}
	return out
}

// writeSquashfs writes the tree as squashfs 4.0: file data in 128 KiB
// zlib blocks (stored raw when zlib does not help), no fragments, metadata
// blocks uncompressed, one id (0), no xattrs, no export table.
func (t *Tree) writeSquashfs(w io.WriterAt, mtime time.Time) (int64, error) {
	// Build the node tree, children in byte order as the format requires.
	nodes := map[string]*sqNode{}
	paths := t.Paths() // sorted: parents before children
	for _, p := range paths {
		n := &sqNode{name: path.Base(p), e: t.entries[p]}
		nodes[p] = n
		if p != "/" {
			parent := nodes[path.Dir(p)]
			parent.children = append(parent.children, n)
		}
	}
	root := nodes["/"]
	for _, n := range nodes {
		sort.Slice(n.children, func(i, j int) bool { return n.children[i].name < n.children[j].name })
	}

	// Inode numbers in post-order: children before their directory, the
	// root last (as mksquashfs numbers them).
	var order []*sqNode
	var number func(n *sqNode)
	number = func(n *sqNode) {
		for _, c := range n.children {
			number(c)
		}
		order = append(order, n)
		n.ino = uint32(len(order))
	}
	number(root)
	parentIno := map[*sqNode]uint32{root: uint32(len(order)) + 1}
	for _, n := range order {
		for _, c := range n.children {
			parentIno[c] = n.ino
		}
	}

	// File data.
	pos := int64(sqSuperblock)
	var zbuf bytes.Buffer
	zw, err := zlib.NewWriterLevel(&zbuf, 6)
	if err != nil {
		return 0, err
	}
	for _, p := range paths {
		n := nodes[p]
		if n.e.kind != kindFile {
			continue
		}
		data := n.e.data
		if n.e.host != "" {
			if data, err = os.ReadFile(n.e.host); err != nil {
				return 0, fmt.Errorf("rootfs: %s: %w", p, err)
			}
		}
		if uint64(pos) > 0xFFFFFFFF || uint64(len(data)) > 0xFFFFFFFF {
			return 0, fmt.Errorf("rootfs: %s: beyond 4 GiB, which basic inodes cannot address", p)
		}
		n.start, n.length = uint64(pos), uint64(len(data))
		for off := 0; off < len(data); off += BlockSize {
			blk := data[off:min(off+BlockSize, len(data))]
			zbuf.Reset()
			zw.Reset(&zbuf)
			if _, err := zw.Write(blk); err != nil {
				return 0, err
			}
			if err := zw.Close(); err != nil {
				return 0, err
			}
			out, size := zbuf.Bytes(), uint32(zbuf.Len())
			if zbuf.Len() >= len(blk) {
				out, size = blk, uint32(len(blk))|sqUncompressed
			}
			if _, err := w.WriteAt(out, pos); err != nil {
				return 0, fmt.Errorf("rootfs: writing %s: %w", p, err)
			}
			pos += int64(len(out))
			n.sizes = append(n.sizes, size)
		}
	}

	// Inode and directory tables, children first so a directory's listing
	// can name its children's inode references.
	var inodes, dirs []byte
	mt := uint32(mtime.Unix())
	header := func(typ uint16, n *sqNode) []byte {
		b := make([]byte, 0, 64)
		b = binary.LittleEndian.AppendUint16(b, typ)
		b = binary.LittleEndian.AppendUint16(b, uint16(n.e.mode.Perm()))
		b = binary.LittleEndian.AppendUint16(b, 0) // uid index
		b = binary.LittleEndian.AppendUint16(b, 0) // gid index
		b = binary.LittleEndian.AppendUint32(b, mt)
		return binary.LittleEndian.AppendUint32(b, n.ino)
	}
	for _, n := range order {
		blk, off := metaRef(len(inodes))
		n.ref = uint64(blk)<<16 | uint64(off)
		switch n.e.kind {
		case kindFile:
			b := header(sqTypeFile, n)
			b = binary.LittleEndian.AppendUint32(b, uint32(n.start))
			b = binary.LittleEndian.AppendUint32(b, sqNoFragment)
			b = binary.LittleEndian.AppendUint32(b, 0)
			b = binary.LittleEndian.AppendUint32(b, uint32(n.length))
			for _, s := range n.sizes {
				b = binary.LittleEndian.AppendUint32(b, s)
			}
			inodes = append(inodes, b...)
		case kindSymlink:
			b := header(sqTypeSymlink, n)
			b = binary.LittleEndian.AppendUint32(b, 1)
			b = binary.LittleEndian.AppendUint32(b, uint32(len(n.e.target)))
			inodes = append(inodes, append(b, n.e.target...)...)
		case kindDir:
			listing, err := dirListing(n)
			if err != nil {
				return 0, err
			}
			if len(listing)+3 > 0xFFFF {
				return 0, fmt.Errorf("rootfs: directory %s is too large for a basic directory inode", n.name)
			}
			dblk, doff := metaRef(len(dirs))
			dirs = append(dirs, listing...)
			subdirs := 0
			for _, c := range n.children {
				if c.e.kind == kindDir {
					subdirs++
				}
			}
			b := header(sqTypeDir, n)
			b = binary.LittleEndian.AppendUint32(b, dblk)
			b = binary.LittleEndian.AppendUint32(b, uint32(2+subdirs))
			b = binary.LittleEndian.AppendUint16(b, uint16(len(listing)+3))
			b = binary.LittleEndian.AppendUint16(b, doff)
			b = binary.LittleEndian.AppendUint32(b, parentIno[n])
			inodes = append(inodes, b...)
		}
	}

	inodeStart := pos
	inodeBlocks := metaBlocks(inodes)
	dirStart := inodeStart + int64(len(inodeBlocks))
	dirBlocks := metaBlocks(dirs)
	idBlockPos := dirStart + int64(len(dirBlocks))
	idBlock := metaBlocks([]byte{0, 0, 0, 0}) // the only id: 0 (root)
	idTable := idBlockPos + int64(len(idBlock))
	end := idTable + 8
	tail := append(append(append(append([]byte{}, inodeBlocks...), dirBlocks...), idBlock...),
		binary.LittleEndian.AppendUint64(nil, uint64(idBlockPos))...)
	if _, err := w.WriteAt(tail, inodeStart); err != nil {
		return 0, fmt.Errorf("rootfs: writing tables: %w", err)
	}

	sb := make([]byte, 0, sqSuperblock)
	sb = binary.LittleEndian.AppendUint32(sb, sqMagic)
	sb = binary.LittleEndian.AppendUint32(sb, uint32(len(order)))
	sb = binary.LittleEndian.AppendUint32(sb, mt)
	sb = binary.LittleEndian.AppendUint32(sb, BlockSize)
	sb = binary.LittleEndian.AppendUint32(sb, 0) // fragments
	sb = binary.LittleEndian.AppendUint16(sb, sqCompressGzip)
	sb = binary.LittleEndian.AppendUint16(sb, sqBlockLog)
	sb = binary.LittleEndian.AppendUint16(sb, sqFlagRawInodes|sqFlagNoFrags|sqFlagNoXattrs|sqFlagRawIDs)
	sb = binary.LittleEndian.AppendUint16(sb, 1) // ids
	sb = binary.LittleEndian.AppendUint16(sb, 4)
	sb = binary.LittleEndian.AppendUint16(sb, 0)
	sb = binary.LittleEndian.AppendUint64(sb, root.ref)
	sb = binary.LittleEndian.AppendUint64(sb, uint64(end))
	sb = binary.LittleEndian.AppendUint64(sb, uint64(idTable))
	sb = binary.LittleEndian.AppendUint64(sb, sqInvalid) // xattr id table
	sb = binary.LittleEndian.AppendUint64(sb, uint64(inodeStart))
	sb = binary.LittleEndian.AppendUint64(sb, uint64(dirStart))
	sb = binary.LittleEndian.AppendUint64(sb, sqInvalid) // fragment table
	sb = binary.LittleEndian.AppendUint64(sb, sqInvalid) // export table
	if _, err := w.WriteAt(sb, 0); err != nil {
		return 0, fmt.Errorf("rootfs: writing superblock: %w", err)
	}
	// Pad to 4 KiB as mksquashfs does, so block devices see whole blocks.
	padded := (end + 4095) &^ 4095
	if padded > end {
		if _, err := w.WriteAt(make([]byte, padded-end), end); err != nil {
			return 0, err
		}
	}
	return padded, nil
}

// dirListing encodes a directory's entries: runs of up to 256 entries
// whose inodes share a metadata block and lie within ±32767 inode numbers
// of the run's base, each run behind a header.
func dirListing(d *sqNode) ([]byte, error) {
	var out []byte
	i := 0
	for i < len(d.children) {
		first := d.children[i]
		blk := uint32(first.ref >> 16)
		base := first.ino
		j := i
		for j < len(d.children) && j-i < sqMaxDirEntries {
			c := d.children[j]
			delta := int64(c.ino) - int64(base)
			if uint32(c.ref>>16) != blk || delta > 32767 || delta < -32768 {
				break
			}
			j++
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(j-i-1))
		out = binary.LittleEndian.AppendUint32(out, blk)
		out = binary.LittleEndian.AppendUint32(out, base)
		for _, c := range d.children[i:j] {
			if len(c.name) == 0 || len(c.name) > 256 || strings.Contains(c.name, "/") {
				return nil, fmt.Errorf("rootfs: bad name %q", c.name)
			}
			out = binary.LittleEndian.AppendUint16(out, uint16(c.ref&0xFFFF))
			out = binary.LittleEndian.AppendUint16(out, uint16(int16(int64(c.ino)-int64(base))))
			out = binary.LittleEndian.AppendUint16(out, sqType(c.e))
			out = binary.LittleEndian.AppendUint16(out, uint16(len(c.name)-1))
			out = append(out, c.name...)
		}
		i = j
	}
	return out, nil
}

package updater

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/presscap/presscap/image/internal/fat"
	"github.com/presscap/presscap/image/internal/partition"
)

// ImagePayload is an update read from a disk image that image/assemble
// wrote: the root squashfs of partition 2 (up to its used size), the used
// part of the boot FAT and the MBR.
type ImagePayload struct {
	f         *os.File
	boot      *fat.FS
	tmp       []*os.File // rebuilt boot FATs, removed by Close
	RootSize  int64
	BootSize  int64
	Layout    *partition.Table
	Timestamp string
}

// OpenImage reads and checks the partition table, squashfs superblock and
// FAT of img.
func OpenImage(img string) (*ImagePayload, error) {
	f, err := os.Open(img)
	if err != nil {
		return nil, err
	}
	p, err := openImage(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", img, err)
	}
	return p, nil
}

func openImage(f *os.File) (*ImagePayload, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	tab, err := partition.Read(f, st.Size())
	if err != nil {
		return nil, err
	}
	if len(tab.Partitions) != 4 || tab.Partitions[partition.RootA-1].Start != partition.RootStart ||
		tab.Partitions[partition.Boot-1].Start != partition.BootStart {
		return nil, fmt.Errorf("partition table is not gokrazy's layout: %+v", tab.Partitions)
	}
	root := tab.Partitions[partition.RootA-1]
	sb := make([]byte, 96)
	if _, err := f.ReadAt(sb, root.Offset()); err != nil {
		return nil, fmt.Errorf("reading the squashfs superblock: %w", err)
	}
	if string(sb[0:4]) != "hsqs" {
		return nil, fmt.Errorf("partition 2 holds no squashfs (magic %q at byte 0)", sb[0:4])
	}
	if major, minor := binary.LittleEndian.Uint16(sb[28:]), binary.LittleEndian.Uint16(sb[30:]); major != 4 || minor != 0 {
		return nil, fmt.Errorf("squashfs version %d.%d (bytes 28, 30), want 4.0", major, minor)
	}
	used := int64(binary.LittleEndian.Uint64(sb[40:]))
	if used <= 0 || used > root.Size() {
		return nil, fmt.Errorf("squashfs bytes_used (byte 40) is %d, the partition holds %d", used, root.Size())
	}
	// mksquashfs pads to 4 KiB; so do we, so the device gets whole blocks.
	used = (used + 4095) &^ 4095
	boot := tab.Partitions[partition.Boot-1]
	fs, err := fat.Open(io.NewSectionReader(f, boot.Offset(), boot.Size()))
	if err != nil {
		return nil, err
	}
	// The build timestamp is the squashfs creation time (image/assemble
	// sets both from the same clock reading).
	ts := time.Unix(int64(binary.LittleEndian.Uint32(sb[8:])), 0).UTC().Format(time.RFC3339)
	return &ImagePayload{f: f, boot: fs, RootSize: used, BootSize: fs.UsedBytes(), Layout: tab, Timestamp: ts}, nil
}

// Payload returns readers over the image for Target.Update.
func (p *ImagePayload) Payload(withMBR bool) Payload {
	root := p.Layout.Partitions[partition.RootA-1]
	boot := p.Layout.Partitions[partition.Boot-1]
	pl := Payload{
		Root:           io.NewSectionReader(p.f, root.Offset(), p.RootSize),
		Boot:           io.NewSectionReader(p.f, boot.Offset(), p.BootSize),
		BuildTimestamp: p.Timestamp,
	}
	if withMBR {
		pl.MBR = io.NewSectionReader(p.f, 0, partition.SectorSize)
	}
	return pl
}

// Close closes the image and removes temporary files.
func (p *ImagePayload) Close() error {
	for _, t := range p.tmp {
		t.Close()
		os.Remove(t.Name())
	}
	p.tmp = nil
	return p.f.Close()
}

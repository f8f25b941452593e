// Package disklabel tells a filesystem's label and type from its first
// blocks: the probe finds its ring disk by label, and the image tool writes
// the ring disk it must find.
package disklabel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Read reads the filesystem label and type from a device's first
// blocks: ext2/3/4 (superblock at 1024, magic 0xEF53 at +0x38, label at
// +0x78) and FAT12/16/32 (boot sector volume label).
func Read(dev string) (label, fstype string, err error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	buf := make([]byte, 2048)
	if _, err := io.ReadFull(f, buf); err != nil {
		return "", "", fmt.Errorf("read %s: %w", dev, err)
	}
	return Parse(buf)
}

// Parse recognises a filesystem from its first 2048 bytes.
func Parse(b []byte) (label, fstype string, err error) {
	if len(b) >= 2048 && binary.LittleEndian.Uint16(b[1024+0x38:]) == 0xEF53 {
		return cstr(b[1024+0x78 : 1024+0x78+16]), "ext4", nil
	}
	if len(b) >= 512 && b[510] == 0x55 && b[511] == 0xAA {
		switch {
		case bytes.HasPrefix(b[0x52:], []byte("FAT32")):
			return strings.TrimRight(string(b[0x47:0x47+11]), " "), "vfat", nil
		case bytes.HasPrefix(b[0x36:], []byte("FAT")):
			return strings.TrimRight(string(b[0x2B:0x2B+11]), " "), "vfat", nil
		}
	}
	return "", "", errors.New("no ext or FAT filesystem")
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

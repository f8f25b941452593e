package disklabel

import "testing"

func TestParseLabel(t *testing.T) {
	b := make([]byte, 2048)
	b[1024+0x38], b[1024+0x39] = 0x53, 0xEF
	copy(b[1024+0x78:], "PRESSCAP")
	if l, fs, err := Parse(b); err != nil || l != "PRESSCAP" || fs != "ext4" {
		t.Errorf("ext4: %q %q %v", l, fs, err)
	}
	v := make([]byte, 2048)
	v[510], v[511] = 0x55, 0xAA
	copy(v[0x52:], "FAT32   ")
	copy(v[0x47:], "USBSTICK   ")
	if l, fs, err := Parse(v); err != nil || l != "USBSTICK" || fs != "vfat" {
		t.Errorf("fat32: %q %q %v", l, fs, err)
	}
	if _, _, err := Parse(make([]byte, 2048)); err == nil {
		t.Error("zeros parsed as a filesystem")
	}
}

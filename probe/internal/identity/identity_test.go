package identity

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// tree writes files (path relative to the root: content) into a fake root.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestRead(t *testing.T) {
	for _, tc := range []struct {
		name          string
		files         map[string]string
		id, src, host string
	}{
		{"pi serial with NUL", map[string]string{
			serialPath: "10000000A1B2C3D4\x00",
			dmiPath:    "4c4c4544-0000-1111-2222-333344445555\n",
		}, "10000000a1b2c3d4", SourceSerial, "presscap-a1b2c3d4"},
		{"vm uuid", map[string]string{
			dmiPath: "5B3A2F1E-9C8D-4E7F-A6B5-C4D3E2F1A0B9\n",
		}, "5b3a2f1e-9c8d-4e7f-a6b5-c4d3e2f1a0b9", SourceDMI, "presscap-e2f1a0b9"},
		{"placeholder uuid falls to the first card", map[string]string{
			dmiPath:                       "00000000-0000-0000-0000-000000000000\n",
			"sys/class/net/lo/address":    "00:00:00:00:00:00\n",
			"sys/class/net/br0/address":   "02:aa:bb:cc:dd:ee\n", // no device: a bridge
			"sys/class/net/eth1/address":  "52:54:00:00:00:02\n",
			"sys/class/net/eth1/device/x": "",
			"sys/class/net/eth0/address":  "52:54:00:12:34:56\n",
			"sys/class/net/eth0/device/x": "",
		}, "525400123456", SourceMAC, "presscap-00123456"},
		{"garbage serial is not an id", map[string]string{
			serialPath:                    "../../etc\x00",
			dmiPath:                       "ffffffff-ffff-ffff-ffff-ffffffffffff",
			"sys/class/net/eth0/address":  "52:54:00:12:34:56\n",
			"sys/class/net/eth0/device/x": "",
		}, "525400123456", SourceMAC, "presscap-00123456"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := Read(tree(t, tc.files))
			if err != nil {
				t.Fatal(err)
			}
			if id.Value != tc.id || id.Source != tc.src {
				t.Fatalf("got %v, want %s (%s)", id, tc.id, tc.src)
			}
			if h := id.Hostname(""); h != tc.host {
				t.Fatalf("default hostname %q, want %q", h, tc.host)
			}
			if h := id.Hostname("lab-7"); h != "lab-7" {
				t.Fatalf("configured hostname gave %q", h)
			}
		})
	}
}

func TestReadNothing(t *testing.T) {
	_, err := Read(tree(t, map[string]string{"sys/class/net/lo/address": "00:00:00:00:00:00\n"}))
	if !errors.Is(err, ErrNone) {
		t.Fatalf("got %v, want ErrNone", err)
	}
}

package eeprom

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadPicksTheNewest(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"pieeprom-2023-01-11.bin": "old",
		"pieeprom-2026-05-17.bin": "newest",
		"pieeprom-2025-12-08.bin": "middle",
		"vl805-000137ad.bin":      "vl old",
		"vl805-000138c0.bin":      "vl new",
		"recovery.bin":            "rec",
		"README.md":               "not an image",
	})
	u, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if u.PieepromName != "pieeprom-2026-05-17.bin" || string(u.Pieeprom) != "newest" ||
		u.VL805Name != "vl805-000138c0.bin" || string(u.VL805) != "vl new" || string(u.Recovery) != "rec" {
		t.Errorf("Load = %s %q, %s %q, %q", u.PieepromName, u.Pieeprom, u.VL805Name, u.VL805, u.Recovery)
	}
	sum := sha256.Sum256([]byte("newest"))
	if got, want := string(Sig(u.Pieeprom)), fmt.Sprintf("%x\n", sum); got != want {
		t.Errorf("Sig = %q, want %q", got, want)
	}
	if v := u.Version(); v.PieepromSHA256 != fmt.Sprintf("%x", sum) || len(v.VL805SHA256) != 64 {
		t.Errorf("Version = %+v", v)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"no pieeprom", map[string]string{"recovery.bin": "r", "vl805-1.bin": "v"}, "no pieeprom-*.bin"},
		{"no recovery", map[string]string{"pieeprom-2026-01-01.bin": "p"}, "no recovery.bin"},
		{"empty pieeprom", map[string]string{"pieeprom-2026-01-01.bin": "", "recovery.bin": "r"}, "empty"},
	} {
		_, err := Load(writeFiles(t, tt.files))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func names(files []BootFile) string {
	var n []string
	for _, f := range files {
		n = append(n, f.Name)
	}
	return strings.Join(n, " ")
}

// TestInstalledAndBootFiles: whether a device already runs an update (the
// update command's decision), what the log says about it, and the boot
// files of a fresh image, which always flash (recovery.bin).
func TestInstalledAndBootFiles(t *testing.T) {
	u := &Update{PieepromName: "pieeprom-2026-05-17.bin", Pieeprom: []byte("pie"),
		VL805Name: "vl805-000138c0.bin", VL805: []byte("vl"), Recovery: []byte("rec")}
	v := u.Version()
	for _, tt := range []struct {
		name string
		dev  *Version
		want string
	}{
		{"fresh image", nil, "recovery.bin"},
		{"device flashed these", &Version{PieepromSHA256: v.PieepromSHA256, VL805SHA256: v.VL805SHA256, FirmwareDate: "2026-05-17"}, "RECOVERY.000"},
		{"older pieeprom", &Version{PieepromSHA256: Hash([]byte("old")), VL805SHA256: v.VL805SHA256}, "recovery.bin"},
		{"older vl805", &Version{PieepromSHA256: v.PieepromSHA256, VL805SHA256: Hash([]byte("old"))}, "recovery.bin"},
		{"no hashes (unfinished flash)", &Version{FirmwareDate: "2024-01-01"}, "recovery.bin"},
	} {
		if got, want := Installed(tt.dev, v), tt.want == RecoveryDone; got != want {
			t.Errorf("%s: Installed = %v, want %v", tt.name, got, want)
		}
		msg := Describe(tt.dev, v)
		if up := tt.want == RecoveryDone; up != strings.HasPrefix(msg, "EEPROM already up to date") ||
			!up && !strings.HasPrefix(msg, "EEPROM will be updated from ") {
			t.Errorf("%s: Describe = %q", tt.name, msg)
		}
	}
	files := u.BootFiles()
	if got, want := names(files), "pieeprom.upd pieeprom.sig vl805.bin vl805.sig recovery.bin"; got != want {
		t.Errorf("files %q, want %q", got, want)
	}
	if !bytes.Equal(files[1].Data, Sig([]byte("pie"))) || !bytes.Equal(files[3].Data, Sig([]byte("vl"))) || string(files[4].Data) != "rec" {
		t.Errorf("contents %q", files)
	}
	// A module without VL805 firmware ships only the pieeprom pair.
	u.VL805Name, u.VL805 = "", nil
	if got := names(u.BootFiles()); got != "pieeprom.upd pieeprom.sig recovery.bin" {
		t.Errorf("without vl805: %q", got)
	}
}

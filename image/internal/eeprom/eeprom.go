// Package eeprom finds the Raspberry Pi 4 bootloader EEPROM update in a
// module like github.com/gokrazy/rpi-eeprom and decides which files the boot
// FAT gets, the way gok does.
//
// The Pi 4's boot ROM runs /recovery.bin when it finds one; recovery.bin
// checks /pieeprom.upd and /vl805.bin against the SHA-256 in the matching
// .sig files, flashes them and renames itself to RECOVERY.000. A boot FAT
// whose recovery.bin is already named RECOVERY.000 therefore flashes
// nothing: an update to a device whose EEPROM already holds these images
// ships it under that name, so the Pi does not re-flash on every update.
// Other models ignore all of these files (the Pi 3 and Zero 2 W have no
// SPI EEPROM; the module carries no Pi 5 image).
package eeprom

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// File names in the boot FAT's root directory.
const (
	PieepromUpd = "pieeprom.upd"
	PieepromSig = "pieeprom.sig"
	VL805Bin    = "vl805.bin"
	VL805Sig    = "vl805.sig"
	Recovery    = "recovery.bin"
	// RecoveryDone is the name recovery.bin gets after a successful flash.
	RecoveryDone = "RECOVERY.000"
)

// Version is what a device last flashed, as gokrazy's status page reports
// it ("EEPROM" in GET / with Accept: application/json): the trimmed
// contents of the boot FAT's .sig files, filled in on a Pi 4 only once
// RECOVERY.000 exists.
type Version struct {
	PieepromSHA256 string
	VL805SHA256    string
	FirmwareDate   string // date of the running bootloader, yyyy-mm-dd
}

// Update is one EEPROM update: the newest pieeprom and VL805 images of a
// module and its recovery.bin.
type Update struct {
	PieepromName string // e.g. pieeprom-2026-05-17.bin
	Pieeprom     []byte
	VL805Name    string // "" if the module ships no VL805 firmware
	VL805        []byte
	Recovery     []byte
}

// Load reads the update from a module directory. The pieeprom-*.bin and
// vl805-*.bin that sort last are the newest (their names carry the date or
// version). A directory without pieeprom-*.bin or recovery.bin is an error.
func Load(dir string) (*Update, error) {
	newest := func(glob string) (string, error) {
		m, err := filepath.Glob(filepath.Join(dir, glob))
		if err != nil {
			return "", err
		}
		if len(m) == 0 {
			return "", nil
		}
		sort.Strings(m)
		return m[len(m)-1], nil
	}
	var u Update
	p, err := newest("pieeprom-*.bin")
	if err != nil {
		return nil, err
	}
	if p == "" {
		return nil, fmt.Errorf("%s holds no pieeprom-*.bin", dir)
	}
	if u.Pieeprom, err = os.ReadFile(p); err != nil {
		return nil, err
	}
	u.PieepromName = filepath.Base(p)
	if len(u.Pieeprom) == 0 {
		return nil, fmt.Errorf("%s is empty", p)
	}
	v, err := newest("vl805-*.bin")
	if err != nil {
		return nil, err
	}
	if v != "" {
		if u.VL805, err = os.ReadFile(v); err != nil {
			return nil, err
		}
		u.VL805Name = filepath.Base(v)
	}
	if u.Recovery, err = os.ReadFile(filepath.Join(dir, Recovery)); err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("%s holds no %s", dir, Recovery)
		}
		return nil, err
	}
	return &u, nil
}

// Hash returns the lowercase hex SHA-256 of b, as the .sig files hold it.
func Hash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Sig returns the contents of a .sig file for b.
func Sig(b []byte) []byte { return []byte(Hash(b) + "\n") }

// Version returns what a device reports once it has flashed u.
func (u *Update) Version() Version {
	v := Version{PieepromSHA256: Hash(u.Pieeprom)}
	if u.VL805Name != "" {
		v.VL805SHA256 = Hash(u.VL805)
	}
	return v
}

// Installed reports whether a device that reports dev already runs the
// images want describes. nil (a device that reports no EEPROM: not a Pi 4,
// an unfinished flash, or no device at all) is never up to date.
func Installed(dev *Version, want Version) bool {
	return dev != nil && dev.PieepromSHA256 != "" &&
		dev.PieepromSHA256 == want.PieepromSHA256 && dev.VL805SHA256 == want.VL805SHA256
}

// BootFile is one file for the boot FAT's root directory.
type BootFile struct {
	Name string
	Data []byte
}

// BootFiles returns the files to write into a fresh image's boot FAT, with
// recovery.bin so that a Pi 4 flashes them. An image is built for any
// device; whether a device already runs this update (and gets RECOVERY.000
// instead) is decided when an update is pushed to it (image/updater).
func (u *Update) BootFiles() []BootFile {
	files := []BootFile{
		{PieepromUpd, u.Pieeprom},
		{PieepromSig, Sig(u.Pieeprom)},
	}
	if u.VL805Name != "" {
		files = append(files, BootFile{VL805Bin, u.VL805}, BootFile{VL805Sig, Sig(u.VL805)})
	}
	return append(files, BootFile{Recovery, u.Recovery})
}

// Describe says what a device that reports dev will do with want, for the
// update's log.
func Describe(dev *Version, want Version) string {
	if Installed(dev, want) {
		return "EEPROM already up to date (pieeprom " + short(want.PieepromSHA256) + ", vl805 " + short(want.VL805SHA256) + ")"
	}
	from := "an unknown version (the device reports no EEPROM status)"
	if dev != nil && dev.PieepromSHA256 != "" {
		from = "pieeprom " + short(dev.PieepromSHA256) + ", vl805 " + short(dev.VL805SHA256)
		if dev.FirmwareDate != "" {
			from += " (running bootloader of " + dev.FirmwareDate + ")"
		}
	}
	return "EEPROM will be updated from " + from + " to pieeprom " + short(want.PieepromSHA256) + ", vl805 " + short(want.VL805SHA256)
}

func short(h string) string {
	h = strings.TrimSpace(h)
	switch {
	case h == "":
		return "none"
	case len(h) > 12:
		return h[:12]
	}
	return h
}

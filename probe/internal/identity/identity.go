// Package identity finds the probe's stable id, which needs no per-card
// build: every card is flashed from the same image, so the id comes from the
// hardware. It names the probe's files, manifests and health report.
package identity

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Sources of the id, in the order they are tried.
const (
	SourceSerial = "serial-number" // Raspberry Pi: the SoC's serial number
	SourceDMI    = "dmi-uuid"      // VM or PC: the DMI product UUID
	SourceMAC    = "mac"           // the first network card's address
)

// Paths below the root, as on a running system.
const (
	serialPath = "proc/device-tree/serial-number"
	dmiPath    = "sys/class/dmi/id/product_uuid"
	netPath    = "sys/class/net"
)

// ID is the probe's id and where it came from.
type ID struct {
	// Value is lower-case hex, with dashes for a UUID: safe in file names
	// and paths on the server.
	Value  string `json:"id"`
	Source string `json:"id_source"`
}

// Short is the last 8 characters of the id, which differ between cards
// (a Pi serial number starts with zeros).
func (id ID) Short() string {
	v := strings.ReplaceAll(id.Value, "-", "")
	if len(v) <= 8 {
		return v
	}
	return v[len(v)-8:]
}

// DefaultHostname is "presscap-<last 8 of the id>".
func (id ID) DefaultHostname() string { return "presscap-" + id.Short() }

// Hostname is the name for files, manifests, reports and the status page:
// the configured one, else the default from the id.
func (id ID) Hostname(configured string) string {
	if configured != "" {
		return configured
	}
	return id.DefaultHostname()
}

// ErrNone: no source gave an id.
var ErrNone = errors.New("identity: no serial number, DMI product UUID or network card address found")

var idRE = regexp.MustCompile(`^[0-9a-f]+(-[0-9a-f]+)*$`)

// Read finds the id under root ("/" on the probe; a fake tree in tests):
// the device-tree serial number, else the DMI product UUID, else the MAC
// address of the first physical network card (by interface name). Values
// that are all zeros or all ones (firmware placeholders) are skipped.
func Read(root string) (ID, error) {
	if v, ok := readValue(filepath.Join(root, serialPath)); ok {
		return ID{Value: v, Source: SourceSerial}, nil
	}
	if v, ok := readValue(filepath.Join(root, dmiPath)); ok {
		return ID{Value: v, Source: SourceDMI}, nil
	}
	if v, ok := firstMAC(filepath.Join(root, netPath)); ok {
		return ID{Value: v, Source: SourceMAC}, nil
	}
	return ID{}, ErrNone
}

// readValue reads one id file: the device tree ends its string with a NUL.
func readValue(path string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	return clean(string(b))
}

func clean(s string) (string, bool) {
	v := strings.ToLower(strings.TrimSpace(strings.TrimRight(s, "\x00")))
	if len(v) > 64 || !idRE.MatchString(v) {
		return "", false
	}
	digits := strings.ReplaceAll(v, "-", "")
	if strings.Trim(digits, "0") == "" || strings.Trim(digits, "f") == "" {
		return "", false
	}
	return v, true
}

// firstMAC returns the address of the first interface with a device link
// (a card, not a bridge, veth or loopback), without colons.
func firstMAC(dir string) (string, bool) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", false
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n, "device")); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, n, "address"))
		if err != nil {
			continue
		}
		if v, ok := clean(strings.ReplaceAll(string(b), ":", "")); ok {
			return v, true
		}
	}
	return "", false
}

// String is "<id> (<source>)" for the log.
func (id ID) String() string { return fmt.Sprintf("%s (%s)", id.Value, id.Source) }

// Check says whether s is an id as Read gives them (lower-case hex in
// groups, at most 64 characters): the provider's tools take ids from a
// command line and from file names on the server, and make paths of them.
func Check(s string) error {
	if v, ok := clean(s); !ok || v != s {
		return fmt.Errorf("%q is not a probe id (lower-case hex digits, groups joined by '-', at most 64)", s)
	}
	return nil
}

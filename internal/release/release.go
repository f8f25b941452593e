// Package release is the update bundle the provider publishes for the fleet
// (issue 14): a manifest naming the parts of one build (root squashfs, boot
// FAT, MBR) with their sizes and SHA-256, signed with ed25519. image/ writes
// bundles; the probe verifies them before it downloads or installs anything.
package release

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// File names inside a bundle directory.
const (
	ManifestFile  = "manifest.json"
	SignatureFile = "manifest.json.sig"
)

// Format is the manifest format this package writes and reads.
const Format = 1

// Part names.
const (
	PartRoot = "root" // squashfs for the inactive root partition
	PartBoot = "boot" // boot FAT as built (a Pi 4 EEPROM update, if any, is flashed)
	// PartBootEEPROMDone is the boot FAT for a device that already runs the
	// bundle's EEPROM (recovery.bin named RECOVERY.000, so it is not
	// flashed again); only in bundles that carry an EEPROM update.
	PartBootEEPROMDone = "boot_eeprom_done"
	PartMBR            = "mbr" // only when the partition table changes
)

// MaxManifestSize bounds what a probe reads from the (untrusted) server.
const MaxManifestSize = 1 << 20

// Part is one file of a bundle.
type Part struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// EEPROM is the Raspberry Pi 4 bootloader update a bundle's boot FAT
// carries (the SHA-256 in its .sig files).
type EEPROM struct {
	PieepromSHA256 string `json:"pieeprom_sha256"`
	VL805SHA256    string `json:"vl805_sha256,omitempty"`
}

// Manifest describes one build.
type Manifest struct {
	Format int `json:"format"`
	// Version is the build timestamp (RFC 3339) the new init reports in
	// gokrazy's status, which is how the probe knows what it runs.
	Version string `json:"version"`
	// Created is when the bundle was written.
	Created  time.Time `json:"created"`
	Instance string    `json:"instance"`
	// RollbackSafe is true when the boot FAT's files are those of the
	// previous release, so booting the previous root again (gokrazy's test
	// boot falling back) gives a working system.
	RollbackSafe bool `json:"rollback_safe"`
	// BootChangeApproved is the provider's explicit consent to install a
	// bundle that is not rollback safe.
	BootChangeApproved bool `json:"boot_change_approved"`
	// Urgent lifts the reboot window (never the capture-window rules).
	Urgent bool `json:"urgent"`
	// BootFiles maps each boot FAT file to its SHA-256: what decides
	// RollbackSafe against the next release, independent of FAT time stamps.
	BootFiles map[string]string `json:"boot_files"`
	EEPROM    *EEPROM           `json:"eeprom,omitempty"`
	Parts     []Part            `json:"parts"`
}

var (
	hexSHA   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	fileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// Validate checks what a probe relies on before it fetches parts: known
// part names, plain file names (the server must not name a path), sizes
// and hashes well formed.
func (m *Manifest) Validate() error {
	if m.Format != Format {
		return fmt.Errorf("manifest format %d, this build reads %d", m.Format, Format)
	}
	if _, err := time.Parse(time.RFC3339, m.Version); err != nil {
		return fmt.Errorf("manifest version %q: want an RFC 3339 build timestamp", m.Version)
	}
	if m.Instance == "" {
		return errors.New("manifest instance is empty")
	}
	seen := map[string]bool{}
	files := map[string]bool{}
	for i, p := range m.Parts {
		switch p.Name {
		case PartRoot, PartBoot, PartBootEEPROMDone, PartMBR:
		default:
			return fmt.Errorf("manifest parts[%d].name %q: want root, boot, boot_eeprom_done or mbr", i, p.Name)
		}
		if seen[p.Name] {
			return fmt.Errorf("manifest parts[%d]: part %q twice", i, p.Name)
		}
		seen[p.Name] = true
		if !fileName.MatchString(p.File) || p.File == ManifestFile || p.File == SignatureFile || files[p.File] {
			return fmt.Errorf("manifest parts[%d].file %q: want a distinct plain file name", i, p.File)
		}
		files[p.File] = true
		if p.Size <= 0 {
			return fmt.Errorf("manifest parts[%d].size %d: want > 0", i, p.Size)
		}
		if !hexSHA.MatchString(p.SHA256) {
			return fmt.Errorf("manifest parts[%d].sha256 %q: want 64 lower-case hex digits", i, p.SHA256)
		}
	}
	if !seen[PartRoot] || !seen[PartBoot] {
		return errors.New("manifest parts: root and boot are required")
	}
	if seen[PartBootEEPROMDone] != (m.EEPROM != nil) {
		return errors.New("manifest: boot_eeprom_done and eeprom go together")
	}
	return nil
}

// Part returns the part named name.
func (m *Manifest) Part(name string) (Part, bool) {
	i := slices.IndexFunc(m.Parts, func(p Part) bool { return p.Name == name })
	if i < 0 {
		return Part{}, false
	}
	return m.Parts[i], true
}

// BuildTime is Version as a time.
func (m *Manifest) BuildTime() (time.Time, error) {
	return time.Parse(time.RFC3339, m.Version)
}

// Sign validates m and returns the manifest bytes and their signature file
// (the base64 ed25519 signature and a newline).
func Sign(m *Manifest, key ed25519.PrivateKey) (manifest, sig []byte, err error) {
	if err := m.Validate(); err != nil {
		return nil, nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	b = append(b, '\n')
	s := base64.StdEncoding.EncodeToString(ed25519.Sign(key, b))
	return b, []byte(s + "\n"), nil
}

// ErrSignature is returned when no trusted key made the signature.
var ErrSignature = errors.New("manifest signature made by none of the trusted keys")

// Verify checks sig over manifest against each trusted key (several during
// a key rotation) and only then parses the manifest.
func Verify(manifest, sig []byte, keys []ed25519.PublicKey) (*Manifest, error) {
	if len(keys) == 0 {
		return nil, errors.New("no trusted release keys configured (release.public_keys)")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig)))
	if err != nil || len(raw) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%s: want the base64 of a %d-byte ed25519 signature", SignatureFile, ed25519.SignatureSize)
	}
	if !slices.ContainsFunc(keys, func(k ed25519.PublicKey) bool { return ed25519.Verify(k, manifest, raw) }) {
		return nil, ErrSignature
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(manifest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Refusal errors of Check.
var (
	ErrNotNewer      = errors.New("release is not newer than the running build")
	ErrOtherInstance = errors.New("release is for another instance")
	ErrNotRollback   = errors.New("release changes the boot partition (not rollback safe) without boot_change_approved")
)

// Check decides whether a verified manifest may be installed on a device
// of instance running build running (an RFC 3339 build timestamp).
func Check(m *Manifest, instance, running string) error {
	if m.Instance != instance {
		return fmt.Errorf("%w: %q, this probe is %q", ErrOtherInstance, m.Instance, instance)
	}
	cur, err := time.Parse(time.RFC3339, running)
	if err != nil {
		return fmt.Errorf("running build %q: %w", running, err)
	}
	bt, err := m.BuildTime()
	if err != nil {
		return err
	}
	if !bt.After(cur) {
		return fmt.Errorf("%w: release %s, running %s", ErrNotNewer, m.Version, running)
	}
	if !m.RollbackSafe && !m.BootChangeApproved {
		return ErrNotRollback
	}
	return nil
}

// ErrHash is returned when a part's content is not what the manifest says.
var ErrHash = errors.New("part does not match the manifest")

// VerifyPart reads r (the whole part) and checks its size and SHA-256.
func VerifyPart(p Part, r io.Reader) error {
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r, p.Size+1))
	if err != nil {
		return fmt.Errorf("part %s (%s): %w", p.Name, p.File, err)
	}
	if n != p.Size {
		return fmt.Errorf("%w: part %s (%s) has %d bytes, the manifest says %d", ErrHash, p.Name, p.File, n, p.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.SHA256 {
		return fmt.Errorf("%w: part %s (%s) hashes to %s, the manifest says %s", ErrHash, p.Name, p.File, got, p.SHA256)
	}
	return nil
}

// NewPart hashes r into a Part.
func NewPart(name, file string, r io.Reader) (Part, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return Part{}, fmt.Errorf("part %s: %w", name, err)
	}
	return Part{Name: name, File: file, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// BootChanges lists the boot files whose content differs between prev and
// next (added, removed or changed), sorted.
func BootChanges(prev, next map[string]string) []string {
	var out []string
	for f, h := range next {
		if prev[f] != h {
			out = append(out, f)
		}
	}
	for f := range prev {
		if _, ok := next[f]; !ok {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}

// Package gokconfig reads a gokrazy instance directory: config.json in the
// format the gok tool reads (github.com/gokrazy/internal/config, which is not
// importable), plus the update password kept next to it.
package gokconfig

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Defaults gok applies when a field is absent.
var (
	DefaultGokrazyPackages = []string{
		"github.com/gokrazy/gokrazy/cmd/dhcp",
		"github.com/gokrazy/gokrazy/cmd/ntp",
		"github.com/gokrazy/gokrazy/cmd/randomd",
		"github.com/gokrazy/gokrazy/cmd/heartbeat",
	}
)

// Defaults gok applies to the fields of one module path or value (see the
// OrDefault methods).
const (
	defaultKernel   = "github.com/gokrazy/kernel.rpi"
	defaultFirmware = "github.com/gokrazy/firmware"
	defaultEEPROM   = "github.com/gokrazy/rpi-eeprom"
	defaultSerial   = "serial0,115200"
)

// PasswordFile holds the generated update password in the instance
// directory; it is git-ignored.
const PasswordFile = "gokr-pw.txt"

// Update is gok's "Update" object. Every field is either honoured by the
// build and the update client or refused by Load (see checkUpdate).
type Update struct {
	Hostname     string `json:",omitempty"`
	UseTLS       string `json:",omitempty"`
	NoPassword   bool   `json:",omitempty"`
	HTTPPort     string `json:",omitempty"`
	HTTPSPort    string `json:",omitempty"`
	HTTPPassword string `json:",omitempty"`
	CertPEM      string `json:",omitempty"`
	KeyPEM       string `json:",omitempty"`
}

// PackageConfig is gok's per-package configuration.
type PackageConfig struct {
	GoBuildFlags      []string          `json:",omitempty"`
	GoBuildTags       []string          `json:",omitempty"`
	Environment       []string          `json:",omitempty"`
	CommandLineFlags  []string          `json:",omitempty"`
	DontStart         bool              `json:",omitempty"`
	WaitForClock      bool              `json:",omitempty"`
	ExtraFilePaths    map[string]string `json:",omitempty"`
	ExtraFileContents map[string]string `json:",omitempty"`
}

// MountDevice is gok's mount description, persisted into the image for
// gokrazy's init.
type MountDevice struct {
	Source  string
	Type    string
	Target  string
	Options string
}

// Config is gok's config.json. Fields this assembler ignores are still
// declared so that a config written by gok loads, and typos do not.
type Config struct {
	Hostname                   string                   `json:"Hostname"`
	DeviceType                 string                   `json:",omitempty"`
	Update                     *Update                  `json:",omitempty"`
	Environment                []string                 `json:",omitempty"`
	Packages                   []string                 `json:"Packages"`
	PackageConfig              map[string]PackageConfig `json:",omitempty"`
	SerialConsole              string                   `json:",omitempty"`
	GokrazyPackages            *[]string                `json:",omitempty"`
	KernelPackage              *string                  `json:",omitempty"`
	FirmwarePackage            *string                  `json:",omitempty"`
	EEPROMPackage              *string                  `json:",omitempty"`
	BootloaderExtraLines       []string                 `json:",omitempty"`
	MountDevices               []MountDevice            `json:",omitempty"`
	InternalCompatibilityFlags json.RawMessage          `json:",omitempty"`

	// Dir is the instance directory the file was read from.
	Dir string `json:"-"`
}

var hostnameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)

// Load reads dir/config.json and checks it. Errors name the field.
func Load(dir string) (*Config, error) {
	p := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("instance config: %w", err)
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	c.Dir = dir
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &c, nil
}

func (c *Config) check() error {
	if !hostnameRE.MatchString(c.Hostname) {
		return fmt.Errorf("Hostname %q is not a valid host name", c.Hostname)
	}
	seen := map[string]string{}
	for _, pkg := range append(c.GokrazyPackagesOrDefault(), c.Packages...) {
		if pkg == "" || strings.ContainsAny(pkg, " \t") {
			return fmt.Errorf("Packages: %q is not a Go package path", pkg)
		}
		base := Basename(pkg)
		if prev, ok := seen[base]; ok {
			return fmt.Errorf("Packages: %s and %s would both be installed as %s", prev, pkg, base)
		}
		seen[base] = pkg
	}
	for pkg, pc := range c.PackageConfig {
		known := false
		for _, p := range append(c.GokrazyPackagesOrDefault(), c.Packages...) {
			known = known || p == pkg
		}
		if !known {
			return fmt.Errorf("PackageConfig: %q is not in Packages", pkg)
		}
		for dst, src := range pc.ExtraFilePaths {
			if !strings.HasPrefix(dst, "/") || filepath.Clean(dst) != dst {
				return fmt.Errorf("PackageConfig[%q].ExtraFilePaths: destination %q must be a clean absolute path", pkg, dst)
			}
			if _, err := os.Stat(c.Resolve(src)); err != nil {
				return fmt.Errorf("PackageConfig[%q].ExtraFilePaths[%q]: %w", pkg, dst, err)
			}
		}
		for dst := range pc.ExtraFileContents {
			if !strings.HasPrefix(dst, "/") || filepath.Clean(dst) != dst {
				return fmt.Errorf("PackageConfig[%q].ExtraFileContents: destination %q must be a clean absolute path", pkg, dst)
			}
		}
		for _, e := range pc.Environment {
			if !strings.Contains(e, "=") {
				return fmt.Errorf("PackageConfig[%q].Environment: %q is not KEY=value", pkg, e)
			}
		}
	}
	for i, m := range c.MountDevices {
		if m.Source == "" || m.Type == "" || !strings.HasPrefix(m.Target, "/") {
			return fmt.Errorf("MountDevices[%d]: Source, Type and an absolute Target are required", i)
		}
	}
	if _, err := c.GOARCH(); err != nil {
		return err
	}
	if c.DeviceType != "" {
		// gok's device slugs select other boot layouts (Odroid, ...).
		return fmt.Errorf("DeviceType %q: this image tool builds only Raspberry Pi and UEFI images (leave it empty)", c.DeviceType)
	}
	if err := checkCompatibilityFlags(c.InternalCompatibilityFlags); err != nil {
		return err
	}
	return c.checkUpdate()
}

// checkCompatibilityFlags refuses gok's command-line settings kept in
// config.json (-update, -insecure, -overwrite, -init_pkg, ...): this tool
// takes its own flags and honours none of them.
func checkCompatibilityFlags(raw json.RawMessage) error {
	if len(raw) == 0 {
		return nil
	}
	var flags map[string]json.RawMessage
	if err := json.Unmarshal(raw, &flags); err != nil {
		return fmt.Errorf("InternalCompatibilityFlags: %w", err)
	}
	for k, v := range flags {
		switch string(v) {
		case `""`, "false", "0", "null":
			continue
		}
		return fmt.Errorf("InternalCompatibilityFlags.%s: gok's command-line setting is not honoured by this image tool (use image build/update's flags): remove it", k)
	}
	return nil
}

// Architectures the image tool builds for.
var goarches = []string{"arm64", "amd64"}

// GOARCH returns the architecture every program in the image is built for:
// gok's top-level Environment ("GOOS=linux", "GOARCH=amd64"), arm64 if it
// names none.
func (c *Config) GOARCH() (string, error) {
	arch := "arm64"
	for _, e := range c.Environment {
		k, v, ok := strings.Cut(e, "=")
		switch {
		case !ok:
			return "", fmt.Errorf("Environment: %q is not KEY=value", e)
		case k == "GOOS" && v != "linux":
			return "", fmt.Errorf("Environment: GOOS=%s: gokrazy runs only on linux", v)
		case k == "GOARCH":
			if !slices.Contains(goarches, v) {
				return "", fmt.Errorf("Environment: GOARCH=%s: this image tool builds %s", v, strings.Join(goarches, " or "))
			}
			arch = v
		case k != "GOOS":
			// gok exports every entry to its own process; here only the
			// target matters, so anything else would be silently lost.
			return "", fmt.Errorf("Environment: %s: only GOOS and GOARCH are honoured (set a program's environment in PackageConfig)", k)
		}
	}
	return arch, nil
}

// Resolve returns a path from the config relative to the instance directory.
func (c *Config) Resolve(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// Basename is the file name a package's binary gets (its last element).
func Basename(pkg string) string {
	return pkg[strings.LastIndex(pkg, "/")+1:]
}

// GokrazyPackagesOrDefault returns the system services.
func (c *Config) GokrazyPackagesOrDefault() []string {
	if c.GokrazyPackages == nil {
		return DefaultGokrazyPackages
	}
	return *c.GokrazyPackages
}

// DHCPPackage is gokrazy's DHCP client.
const DHCPPackage = "github.com/gokrazy/gokrazy/cmd/dhcp"

// DHCPInterface returns the interface the image's DHCP client obtains its
// lease on: its -interface flag, eth0 when not given (the client's
// default), "" when the image does not start the client or gives it a
// static configuration instead.
func (c *Config) DHCPInterface() string {
	if !slices.Contains(c.GokrazyPackagesOrDefault(), DHCPPackage) {
		return ""
	}
	pc := c.PackageConfig[DHCPPackage]
	if pc.DontStart {
		return ""
	}
	iface := "eth0"
	flags := pc.CommandLineFlags
	for i := 0; i < len(flags); i++ {
		if !strings.HasPrefix(flags[i], "-") || flags[i] == "--" {
			break // the flag package stops at the first argument
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(flags[i], "-"), "=")
		if !hasValue && i+1 < len(flags) && name != "" {
			value = flags[i+1]
			i++
		}
		switch name {
		case "interface":
			iface = value
		case "static_network_config":
			if value != "" {
				return ""
			}
		}
	}
	return iface
}

// KernelPackageOrDefault returns the kernel module path.
func (c *Config) KernelPackageOrDefault() string {
	if c.KernelPackage == nil {
		return defaultKernel
	}
	return *c.KernelPackage
}

// FirmwarePackageOrDefault returns the Raspberry Pi firmware module path, or
// "" when the instance has none (a UEFI machine).
func (c *Config) FirmwarePackageOrDefault() string {
	if c.FirmwarePackage == nil {
		return defaultFirmware
	}
	return *c.FirmwarePackage
}

// EEPROMPackageOrDefault returns the module holding the Raspberry Pi 4
// EEPROM update (gok's default when the field is absent), or "" when the
// instance ships none.
func (c *Config) EEPROMPackageOrDefault() string {
	if c.EEPROMPackage == nil {
		return defaultEEPROM
	}
	return *c.EEPROMPackage
}

// SerialConsoleOrDefault returns the console= argument, or "disabled".
func (c *Config) SerialConsoleOrDefault() string {
	if c.SerialConsole == "" {
		return defaultSerial
	}
	return c.SerialConsole
}

// HTTPPort returns the port gokrazy's web interface listens on.
func (c *Config) HTTPPort() string {
	if c.Update != nil && c.Update.HTTPPort != "" {
		return c.Update.HTTPPort
	}
	return "80"
}

// HTTPSPort returns the TLS port.
func (c *Config) HTTPSPort() string {
	if c.Update != nil && c.Update.HTTPSPort != "" {
		return c.Update.HTTPSPort
	}
	return "443"
}

// Password returns the update password: Update.HTTPPassword if the config
// sets it, else the instance's gokr-pw.txt, which is generated on first use.
func (c *Config) Password() (string, error) {
	if c.Update != nil && c.Update.HTTPPassword != "" {
		return c.Update.HTTPPassword, nil
	}
	p := filepath.Join(c.Dir, PasswordFile)
	b, err := os.ReadFile(p)
	if err == nil {
		pw := strings.TrimSpace(string(b))
		if pw == "" {
			return "", fmt.Errorf("%s is empty: delete it to generate a new password", p)
		}
		return pw, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	const alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
	var pw strings.Builder
	for _, v := range raw {
		pw.WriteByte(alphabet[int(v)%len(alphabet)])
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("creating the update password: %w", err)
	}
	if _, err := fmt.Fprintln(f, pw.String()); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return pw.String(), nil
}

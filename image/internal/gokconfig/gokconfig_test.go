package gokconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRejectsBadConfigs(t *testing.T) {
	for _, tt := range []struct {
		name, config, want string
	}{
		{"unknown field", `{"Hostname": "p", "Packages": [], "Pakages": []}`, "Pakages"},
		{"hostname", `{"Hostname": "bad_name", "Packages": []}`, "Hostname"},
		{"same basename", `{"Hostname": "p", "Packages": ["a/x", "b/x"]}`, "both be installed as x"},
		{"default service clash", `{"Hostname": "p", "Packages": ["example.com/ntp"]}`, "ntp"},
		{"package config for nothing", `{"Hostname": "p", "Packages": [], "PackageConfig": {"a/x": {}}}`, "not in Packages"},
		{"missing extra file", `{"Hostname": "p", "Packages": ["a/x"], "PackageConfig": {"a/x": {"ExtraFilePaths": {"/etc/x": "nope.json"}}}}`, "nope.json"},
		{"relative destination", `{"Hostname": "p", "Packages": ["a/x"], "PackageConfig": {"a/x": {"ExtraFileContents": {"etc/x": "y"}}}}`, "absolute"},
		{"environment", `{"Hostname": "p", "Packages": ["a/x"], "PackageConfig": {"a/x": {"Environment": ["NOEQUALS"]}}}`, "KEY=value"},
		{"mount device", `{"Hostname": "p", "Packages": [], "MountDevices": [{"Source": "/dev/sda1"}]}`, "MountDevices[0]"},
		{"not json", `{"Hostname": "p",`, "config.json"},
		{"instance environment", `{"Hostname": "p", "Packages": [], "Environment": ["GOARCH"]}`, "Environment"},
		{"instance GOARCH", `{"Hostname": "p", "Packages": [], "Environment": ["GOARCH=riscv64"]}`, "GOARCH=riscv64"},
		{"instance GOOS", `{"Hostname": "p", "Packages": [], "Environment": ["GOOS=darwin"]}`, "GOOS=darwin"},
		{"instance other variable", `{"Hostname": "p", "Packages": [], "Environment": ["CGO_ENABLED=1"]}`, "CGO_ENABLED"},
		{"device type", `{"Hostname": "p", "Packages": [], "DeviceType": "odroidhc1"}`, "DeviceType"},
		{"gok insecure", `{"Hostname": "p", "Packages": [], "InternalCompatibilityFlags": {"Insecure": true}}`, "InternalCompatibilityFlags.Insecure"},
		{"gok update", `{"Hostname": "p", "Packages": [], "InternalCompatibilityFlags": {"Update": "yes"}}`, "InternalCompatibilityFlags.Update"},
	} {
		dir := t.TempDir()
		write(t, dir, "config.json", tt.config)
		_, err := Load(dir)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tt.name, err, tt.want)
		}
	}
}

func TestLoadDefaultsAndPassword(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "probe.json", "{}")
	write(t, dir, "config.json", `{"Hostname": "presscap", "Packages": ["github.com/presscap/presscap/probe"],
		"PackageConfig": {"github.com/presscap/presscap/probe": {"ExtraFilePaths": {"/etc/presscap/config.json": "probe.json"}}}}`)
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.KernelPackageOrDefault() != "github.com/gokrazy/kernel.rpi" || c.FirmwarePackageOrDefault() != "github.com/gokrazy/firmware" ||
		c.SerialConsoleOrDefault() != "serial0,115200" || c.HTTPPort() != "80" || c.HTTPSPort() != "443" ||
		len(c.GokrazyPackagesOrDefault()) != 4 {
		t.Errorf("defaults: %+v", c)
	}
	if got := c.Resolve("probe.json"); got != filepath.Join(dir, "probe.json") {
		t.Errorf("Resolve = %s", got)
	}
	pw, err := c.Password()
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, PasswordFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v %v", st, err)
	}
	if len(pw) < 20 {
		t.Errorf("password %q too short", pw)
	}
	again, err := c.Password()
	if err != nil || again != pw {
		t.Errorf("second Password() = %q %v, want the stored %q", again, err, pw)
	}
	c.Update = &Update{HTTPPassword: "fromconfig"}
	if p, _ := c.Password(); p != "fromconfig" {
		t.Errorf("Update.HTTPPassword ignored: %q", p)
	}
}

func TestEEPROMPackageDefault(t *testing.T) {
	for _, tt := range []struct{ field, want string }{
		{``, "github.com/gokrazy/rpi-eeprom"},
		{`, "EEPROMPackage": ""`, ""},
		{`, "EEPROMPackage": "example.com/my-eeprom"`, "example.com/my-eeprom"},
	} {
		dir := t.TempDir()
		write(t, dir, "config.json", `{"Hostname": "p", "Packages": []`+tt.field+`}`)
		c, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.EEPROMPackageOrDefault(); got != tt.want {
			t.Errorf("config %q: EEPROMPackageOrDefault = %q, want %q", tt.field, got, tt.want)
		}
	}
}

func TestEmptyCompatibilityFlagsAccepted(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "config.json", `{"Hostname": "p", "Packages": [], "InternalCompatibilityFlags": {"Overwrite": "", "Insecure": false}}`)
	if _, err := Load(dir); err != nil {
		t.Errorf("empty gok flags refused: %v", err)
	}
}

func TestGOARCH(t *testing.T) {
	for _, tt := range []struct{ env, want string }{
		{``, "arm64"},
		{`"Environment": ["GOOS=linux", "GOARCH=amd64"],`, "amd64"},
		{`"Environment": ["GOARCH=arm64"],`, "arm64"},
	} {
		dir := t.TempDir()
		write(t, dir, "config.json", `{"Hostname": "p", `+tt.env+` "Packages": []}`)
		c, err := Load(dir)
		if err != nil {
			t.Fatalf("%s: %v", tt.env, err)
		}
		if got, err := c.GOARCH(); got != tt.want || err != nil {
			t.Errorf("%s: GOARCH() = %q, %v; want %q", tt.env, got, err, tt.want)
		}
	}
}

// TestDHCPInterface: the interface gokrazy's DHCP client runs on, from
// its flags as the flag package reads them.
func TestDHCPInterface(t *testing.T) {
	none := []string{"github.com/gokrazy/gokrazy/cmd/ntp"}
	for _, tc := range []struct {
		flags     []string
		dontStart bool
		packages  *[]string
		want      string
	}{
		{nil, false, nil, "eth0"},
		{[]string{"-interface", "br0"}, false, nil, "br0"},
		{[]string{"-interface=br0"}, false, nil, "br0"},
		{[]string{"--interface=wlan0", "-extra_route_priority", "5"}, false, nil, "wlan0"},
		{[]string{"-extra_route_priority=5", "-interface", "br0"}, false, nil, "br0"},
		{[]string{"--", "-interface=br0"}, false, nil, "eth0"},
		{[]string{"-static_network_config=/etc/net.json"}, false, nil, ""},
		{[]string{"-interface=br0"}, true, nil, ""},
		{nil, false, &none, ""},
	} {
		c := &Config{GokrazyPackages: tc.packages, PackageConfig: map[string]PackageConfig{
			DHCPPackage: {CommandLineFlags: tc.flags, DontStart: tc.dontStart}}}
		if got := c.DHCPInterface(); got != tc.want {
			t.Errorf("flags %q, DontStart %v, packages %v: %q, want %q", tc.flags, tc.dontStart, tc.packages, got, tc.want)
		}
	}
}

package assemble

import (
	"bytes"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/image/internal/gokconfig"
	"github.com/presscap/presscap/image/internal/partition"
)

func TestInitSource(t *testing.T) {
	cfg := &gokconfig.Config{
		Hostname: "p",
		Dir:      "gokrazy/presscap-test",
		Packages: []string{"github.com/presscap/presscap/probe", "example.com/tool"},
		PackageConfig: map[string]gokconfig.PackageConfig{
			"github.com/presscap/presscap/probe": {CommandLineFlags: []string{"run", `-x="quoted" \ back`}, Environment: []string{"A=b c"}, WaitForClock: true},
			"example.com/tool":                   {DontStart: true},
		},
	}
	src := InitSource(cfg, "2026-11-27T10:00:00Z")
	if _, err := parser.ParseFile(token.NewFileSet(), "main.go", src, 0); err != nil {
		t.Fatalf("generated init does not parse: %v\n%s", err, src)
	}
	for _, want := range []string{
		`const buildTimestamp = "2026-11-27T10:00:00Z"`,
		`gokrazy.Boot(buildTimestamp)`,
		`os.Setenv("PRESSCAP_IMAGE_BUILD", buildTimestamp)`,
		`os.Setenv("PRESSCAP_INSTANCE", "presscap-test")`,
		`os.Setenv("PRESSCAP_DHCP_INTERFACE", "eth0")`, // the client's default
		`gokrazy.NewService(&exec.Cmd{Path: "/gokrazy/dhcp", Args: []string{"/gokrazy/dhcp"}, Env: os.Environ()})`,
		`gokrazy.NewWaitForClockService(&exec.Cmd{Path: "/user/probe", Args: []string{"/user/probe", "run", "-x=\"quoted\" \\ back"}, Env: append(os.Environ(), "A=b c")})`,
		`gokrazy.NewStoppedService(&exec.Cmd{Path: "/user/tool"`,
		`gokrazy.SuperviseServices(services)`,
	} {
		if !strings.Contains(src, want) {
			t.Errorf("init lacks %s\n%s", want, src)
		}
	}
	// Set before the services' environments are taken.
	if strings.Index(src, "os.Setenv(") > strings.Index(src, "os.Environ()") {
		t.Errorf("PRESSCAP_IMAGE_BUILD is set after the services' environments are made:\n%s", src)
	}
}

func TestCmdlineAndConfigTxt(t *testing.T) {
	cfg := &gokconfig.Config{Hostname: "presscap", BootloaderExtraLines: []string{"dtoverlay=disable-bt"}}
	sig := partition.Signature("presscap")
	got := Cmdline(cfg, sig)
	if !strings.HasPrefix(got, "console=tty1 console=serial0,115200 root=PARTUUID=60c24cc1-f3f9-427a-8199-") ||
		!strings.HasSuffix(got, "0001/PARTNROFF=1 init=/gokrazy/init rootwait panic=10 oops=panic") {
		t.Errorf("Cmdline = %q", got)
	}
	cfg.SerialConsole = "disabled"
	if strings.Contains(Cmdline(cfg, sig), "serial0") {
		t.Errorf("disabled serial console still in %q", Cmdline(cfg, sig))
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.txt"), []byte("arm_control=0x200\nenable_uart=0\nkernel=vmlinuz"), 0o644); err != nil {
		t.Fatal(err)
	}
	ct, err := ConfigTxt(cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(ct) != "arm_control=0x200\nenable_uart=0\nkernel=vmlinuz\ndtoverlay=disable-bt\n" {
		t.Errorf("config.txt without serial console: %q", ct)
	}
	cfg.SerialConsole = ""
	ct, _ = ConfigTxt(cfg, dir)
	if !strings.Contains(string(ct), "enable_uart=1\n") || strings.Contains(string(ct), "enable_uart=0") {
		t.Errorf("config.txt with serial console: %q", ct)
	}
}

func TestUTCZoneinfo(t *testing.T) {
	loc, err := time.LoadLocationFromTZData("UTC", UTCZoneinfo())
	if err != nil {
		t.Fatal(err)
	}
	name, off := time.Date(2026, 7, 1, 12, 0, 0, 0, loc).Zone()
	if name != "UTC" || off != 0 {
		t.Errorf("zone %s %d", name, off)
	}
}

func TestWebFilesHonourUpdateSettings(t *testing.T) {
	paths := func(fs []rootFile) map[string]rootFile {
		m := map[string]rootFile{}
		for _, f := range fs {
			m[f.path] = f
		}
		return m
	}
	load := func(update string) *gokconfig.Config {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"Hostname": "p", "Packages": [], "Update": `+update+`}`), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := gokconfig.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	plain, err := webFiles(load(`{"HTTPPassword": "pw"}`))
	if err != nil {
		t.Fatal(err)
	}
	m := paths(plain)
	if f, ok := m["/etc/gokr-pw.txt"]; !ok || string(f.data) != "pw" || f.mode != 0o400 {
		t.Errorf("password file: %+v", f)
	}
	if _, ok := m["/etc/ssl/gokrazy-web.pem"]; ok || len(m) != 1 {
		t.Errorf("plain HTTP instance: %v", m)
	}

	// NoPassword: no password file, so gokrazy serves only its Unix socket.
	none, err := webFiles(load(`{"NoPassword": true}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(none) != 0 {
		t.Errorf("NoPassword: %v", paths(none))
	}

	// self-signed: the instance's pair, where gokrazy's setupTLS loads it.
	c := load(`{"UseTLS": "self-signed"}`)
	tlsFiles, err := webFiles(c)
	if err != nil {
		t.Fatal(err)
	}
	m = paths(tlsFiles)
	cert, key, err := c.TLSCertificate(false)
	if err != nil || cert == nil {
		t.Fatalf("no stored pair after the build: %v", err)
	}
	if f := m["/etc/ssl/gokrazy-web.pem"]; !bytes.Equal(f.data, cert) || f.mode != 0o444 {
		t.Errorf("certificate: %+v", f)
	}
	if f := m["/etc/ssl/gokrazy-web.key.pem"]; !bytes.Equal(f.data, key) || f.mode != 0o400 {
		t.Errorf("key: mode %v, same %v", f.mode, bytes.Equal(f.data, key))
	}
	if _, ok := m["/etc/gokr-pw.txt"]; !ok {
		t.Error("TLS instance without a password file")
	}
}

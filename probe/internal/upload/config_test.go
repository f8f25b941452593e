package upload

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/field"
	"golang.org/x/crypto/ssh"
)

func validConfig() Config {
	c := DefaultConfig()
	c.Enabled = true
	c.Server = "sftp.example.net"
	c.User = "probe"
	c.RemoteDir = "/incoming"
	c.HostKey = "SHA256:" + strings.Repeat("A", 43)
	return c
}

func TestDefaultConfigValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default: %v", err)
	}
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("enabled example: %v", err)
	}
	if DefaultConfig().Enabled {
		t.Fatal("upload must be off until configured")
	}
}

func TestValidateNamesField(t *testing.T) {
	for _, tc := range []struct {
		field string
		edit  func(*Config)
	}{
		{"auth", func(c *Config) { c.Auth = "cert" }},
		{"time", func(c *Config) { c.Time = "2:00" }},
		{"time", func(c *Config) { c.Time = "24:00" }},
		{"window_end", func(c *Config) { c.WindowEnd = "05:60" }},
		{"window_end", func(c *Config) { c.WindowEnd = c.Time }},
		{"time_zone", func(c *Config) { c.TimeZone = "Mars/Olympus" }},
		{"bandwidth_limit_kbps", func(c *Config) { c.BandwidthLimitKbps = -1 }},
		{"bandwidth_limit_kbps", func(c *Config) { c.BandwidthLimitKbps = 2 }},
		{"retry.initial", func(c *Config) { c.Retry.Initial = 0 }},
		{"retry.max", func(c *Config) { c.Retry.Max = field.Duration(time.Second) }},
		{"retry.attempts", func(c *Config) { c.Retry.Attempts = -2 }},
		{"connect_timeout", func(c *Config) { c.ConnectTimeout = 0 }},
		{"password_recipient", func(c *Config) { c.PasswordRecipient = "c2hvcnQ=" }},
		{"user", func(c *Config) { c.User = "presscap-{serial}" }},
		{"enroll_key_file", func(c *Config) { c.EnrollUser = "enrol" }},
		{"enroll_user", func(c *Config) { c.EnrollKeyFile = "/etc/presscap/enroll_ed25519" }},
		{"enroll_user", func(c *Config) { c.EnrollUser, c.EnrollKeyFile, c.KeyFile = "enrol", "/etc/k", "/etc/fleet_key" }},
		{"server", func(c *Config) { c.Server = "" }},
		{"server", func(c *Config) { c.Server = "host:99999" }},
		{"server", func(c *Config) { c.Server = "host:ssh" }},
		{"user", func(c *Config) { c.User = "" }},
		{"remote_dir", func(c *Config) { c.RemoteDir = "" }},
		{"password", func(c *Config) { c.Auth = AuthPassword }},
		{"host_key", func(c *Config) { c.HostKey = "" }},
		{"host_key", func(c *Config) { c.HostKey = "SHA256:short" }},
		{"host_key", func(c *Config) { c.HostKey = "example.net ssh-ed25519 notbase64!" }},
		{"sent_dir", func(c *Config) { c.SentDir = "./" }},
		{"retry.initial", func(c *Config) { c.Retry.Initial = field.Duration(99 * time.Millisecond) }},
		{"host_key", func(c *Config) { c.HostKey = "@revoked sftp.example.net " + testKey }},
		{"host_key", func(c *Config) { c.HostKey = "@cert-authority *.example.net " + testKey }},
	} {
		c := validConfig()
		tc.edit(&c)
		err := c.Validate()
		if err == nil {
			t.Errorf("%s: no error for %+v", tc.field, c)
			continue
		}
		if !strings.HasPrefix(err.Error(), "upload."+tc.field+": ") {
			t.Errorf("error %q does not start with the field %q", err, tc.field)
		}
	}
}

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOvLRgktC3q2zlaqrQM+us3AQNUF5+lpiscwzIJO+ytB"

// TestValidateEveryProblem: one run names every field at fault, not only
// the first.
func TestValidateEveryProblem(t *testing.T) {
	c := DefaultConfig()
	c.Enabled, c.Server = true, "x"
	err := c.Validate()
	for _, f := range []string{"upload.user: ", "upload.remote_dir: ", "upload.host_key: "} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("Validate = %v, want a line for %s", err, f)
		}
	}
}

// TestFingerprintWarning: a SHA256: pin of the right length that is no
// base64 digest is a warning (it can match no key, the upload fails
// closed as in earlier versions), never a refusal.
func TestFingerprintWarning(t *testing.T) {
	for _, tc := range []struct {
		pin  string
		warn bool
	}{
		{"SHA256:" + strings.Repeat("A", 43), false},
		{"SHA256:" + strings.Repeat("A", 42) + "E", false},
		{"SHA256:" + strings.Repeat("A", 42) + "B", true}, // bits past the 32 bytes
		{"SHA256:" + strings.Repeat("!", 43), true},
		{"SHA256:" + strings.Repeat("A", 41) + "-_", true}, // URL alphabet
	} {
		c := validConfig()
		c.HostKey = tc.pin
		if err := c.Validate(); err != nil {
			t.Errorf("%s: Validate = %v, want only a warning", tc.pin, err)
		}
		w := c.Warnings()
		if got := len(w) > 0; got != tc.warn || (got && w[0].Field != "upload.host_key") {
			t.Errorf("%s: warnings %v, want warning %v", tc.pin, w, tc.warn)
		}
	}
}

// TestBadFingerprintSaysWhy: a connection refused for such a pin says
// the pin is no digest, not that the provider changed the server's key.
func TestBadFingerprintSaysWhy(t *testing.T) {
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(testKey))
	if err != nil {
		t.Fatal(err)
	}
	bad, err := parseHostKeyPin("SHA256:" + strings.Repeat("!", 43))
	if err != nil {
		t.Fatal(err)
	}
	err = bad.callback()("sftp.example.net:22", nil, key)
	if !errors.Is(err, ErrHostKey) || !strings.Contains(err.Error(), "is not base64 of a SHA-256 digest") {
		t.Errorf("callback = %v", err)
	}
	good, _ := parseHostKeyPin(ssh.FingerprintSHA256(key))
	if err := good.callback()("sftp.example.net:22", nil, key); err != nil {
		t.Errorf("the key's own fingerprint: %v", err)
	}
}

func TestConfigJSON(t *testing.T) {
	c := DefaultConfig()
	in := `{"enable": true, "server": "[2001:db8::1]:2222", "user": "p", "remote_dir": "/in",
		"host_key": "sftp.example.net ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOvLRgktC3q2zlaqrQM+us3AQNUF5+lpiscwzIJO+ytB",
		"time": "23:30", "window_end": "05:00", "retry": {"initial": "1m", "max": "1h", "attempts": 0}}`
	if err := json.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Retry.Initial != field.Duration(time.Minute) || c.ConnectTimeout != DefaultConfig().ConnectTimeout {
		t.Fatalf("decoded %+v", c)
	}
	if a, _ := c.address(); a != "[2001:db8::1]:2222" {
		t.Fatalf("address %q", a)
	}
	c.Server = "sftp.example.net"
	if a, _ := c.address(); a != "sftp.example.net:22" {
		t.Fatalf("default port: %q", a)
	}
	if err := json.Unmarshal([]byte(`{"retry": {"initial": 30}}`), &c); err == nil || !strings.Contains(err.Error(), "duration") {
		t.Fatalf("a number as duration: %v", err)
	}
	out, _ := json.Marshal(DefaultConfig())
	if !strings.Contains(string(out), `"initial":"30s"`) {
		t.Fatalf("durations are written as strings: %s", out)
	}
}

func TestSchedule(t *testing.T) {
	c := DefaultConfig()
	c.Time, c.WindowEnd, c.TimeZone = "02:00", "01:00", "Europe/Berlin"
	s, err := newSchedule(c)
	if err != nil {
		t.Fatal(err)
	}
	loc := s.loc
	at := func(y int, mo time.Month, d, h, mi int) time.Time { return time.Date(y, mo, d, h, mi, 0, 0, loc) }
	if got := s.next(at(2026, 11, 27, 2, 0)); !got.Equal(at(2026, 11, 28, 2, 0)) {
		t.Errorf("next at the slot itself: %v", got)
	}
	if got := s.prev(at(2026, 11, 27, 2, 0)); !got.Equal(at(2026, 11, 27, 2, 0)) {
		t.Errorf("prev at the slot itself: %v", got)
	}
	if got := s.prev(at(2026, 11, 27, 1, 59)); !got.Equal(at(2026, 11, 26, 2, 0)) {
		t.Errorf("prev before the slot: %v", got)
	}
	// 02:00 does not exist on 2026-03-29 in Berlin (clocks go to 03:00):
	// the run starts at 03:00 CEST, 01:00 UTC.
	if got := s.next(at(2026, 3, 29, 0, 30)); !got.Equal(time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)) {
		t.Errorf("next across the DST gap: %v", got.UTC())
	}
	// A window end before the start is the next day: 23 h long.
	slot := at(2026, 11, 27, 2, 0)
	if got := s.deadline(slot, slot); !got.Equal(at(2026, 11, 28, 1, 0)) {
		t.Errorf("deadline %v", got)
	}
	// A run caught up after its window gets the window's length from now.
	late := at(2026, 11, 28, 9, 0)
	if got := s.deadline(slot, late); !got.Equal(late.Add(23 * time.Hour)) {
		t.Errorf("catch-up deadline %v", got)
	}
	c.WindowEnd = ""
	s, _ = newSchedule(c)
	if !s.deadline(slot, slot).IsZero() {
		t.Error("deadline without a window end")
	}
}

// Package upload sends the queue of saved windows to the provider's SFTP
// server at a set time of day (or right after each window is saved),
// removing a local file only once the server holds all of it.
//
// This file holds the package's configuration section, which probe/config
// embeds under the JSON key "upload".
package upload

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/presscap/presscap/internal/daytime"
	"github.com/presscap/presscap/internal/field"
	"github.com/presscap/presscap/probe/internal/devicepw"

	// The device has no zoneinfo database; time_zone must still resolve.
	_ "time/tzdata"
)

// Auth methods for Config.Auth.
const (
	AuthKey      = "key"
	AuthPassword = "password"
)

// Config is this package's section of the probe configuration.
type Config struct {
	// Enabled turns uploading on. Everything else is only checked when set.
	Enabled bool `json:"enable"`
	// Server is host:port of the SFTP server; the port defaults to 22.
	Server string `json:"server"`
	// User is the SSH login name; {id} and {id8} in it stand for the
	// probe's id and its last 8 characters (an account per probe from
	// one image: "presscap-{id8}").
	User string `json:"user"`
	// RemoteDir is the directory on the server the files go to. It must exist.
	RemoteDir string `json:"remote_dir"`
	// Auth is "key" (the probe's own ed25519 key, created on first start)
	// or "password".
	Auth string `json:"auth"`
	// KeyFile overrides where the private key lives; default
	// <state dir>/id_ed25519. Created when missing.
	KeyFile string `json:"key_file,omitempty"`
	// Password is used when Auth is "password" (password and
	// keyboard-interactive methods).
	Password string `json:"password,omitempty"`
	// HostKey pins the server's host key: a known_hosts line
	// ("host ssh-ed25519 AAAA..."), a bare public key ("ssh-ed25519 AAAA...")
	// or a fingerprint ("SHA256:..."). Anything else offered is refused.
	HostKey string `json:"host_key"`
	// Time is the daily start time, "HH:MM" (24 h), in TimeZone.
	Time string `json:"time"`
	// TimeZone is an IANA zone name ("Europe/Berlin"), "UTC" or "Local"
	// (also ""). The probe's configuration sets it from clock.time_zone,
	// the one zone of the probe; a file naming upload.time_zone is an
	// earlier version's (see probe/config's upgrade).
	TimeZone string `json:"time_zone,omitempty"`
	// WindowEnd, "HH:MM" or empty, is when no new file is started any more
	// (a file in flight completes). Earlier than Time means the next day.
	WindowEnd string `json:"window_end,omitempty"`
	// AfterCapture uploads right after each saved window as well (see Kick).
	AfterCapture bool `json:"after_capture"`
	// BandwidthLimitKbps caps the upload rate in kbit/s; 0 is unlimited.
	BandwidthLimitKbps int64 `json:"bandwidth_limit_kbps"`
	// SentDir, if set, is where uploaded files are moved instead of being
	// deleted; relative paths are inside the queue directory. It must be on
	// the same file system as the queue.
	SentDir string `json:"sent_dir,omitempty"`
	// Retry controls retries of a failed run.
	Retry RetryConfig `json:"retry"`
	// ConnectTimeout bounds TCP connect plus SSH handshake and login.
	ConnectTimeout field.Duration `json:"connect_timeout"`
	// PasswordRecipient, for probes that share one account, is the
	// provider's X25519 public key (base64, `probe fleet password-key`):
	// the health report then carries the device password sealed to it,
	// never in clear. Like every upload field, never from the server.
	PasswordRecipient string `json:"password_recipient,omitempty"`
	// EnrollUser and EnrollKeyFile are the provider's enrolment account
	// and its private key, carried in the image: a probe with its own key
	// (no key_file) that its account refuses writes its public key to
	// fleet/enroll/<id>.pub with them, for the provider to accept.
	EnrollUser    string `json:"enroll_user,omitempty"`
	EnrollKeyFile string `json:"enroll_key_file,omitempty"`
}

// RetryConfig is the backoff of failed attempts within one run: the wait
// starts at Initial and doubles up to Max.
type RetryConfig struct {
	Initial field.Duration `json:"initial"`
	Max     field.Duration `json:"max"`
	// Attempts caps the attempts of one run; 0 means: scheduled runs retry
	// until the window ends (or the next scheduled time when there is no
	// window end), after_capture runs try DefaultKickAttempts times.
	Attempts int `json:"attempts"`
}

// DefaultKickAttempts is the attempt limit of an after_capture run when
// retry.attempts is 0; whatever is left waits for the scheduled run.
const DefaultKickAttempts = 3

// DefaultConfig returns the configuration used when the file omits the section.
func DefaultConfig() Config {
	return Config{
		Enabled:        false,
		Auth:           AuthKey,
		Time:           "02:00",
		Retry:          RetryConfig{Initial: field.Duration(30 * time.Second), Max: field.Duration(10 * time.Minute)},
		ConnectTimeout: field.Duration(30 * time.Second),
	}
}

// Validate reports every problem, each naming its JSON field
// ("upload.server"), as field.Errors.
func (c Config) Validate() error {
	var es field.Errors
	bad := func(f, format string, args ...any) { es.Add("upload."+f, format, args...) }
	if c.Auth != AuthKey && c.Auth != AuthPassword {
		bad("auth", "%q is neither %q nor %q", c.Auth, AuthKey, AuthPassword)
	}
	if _, err := parseClock(c.Time); err != nil {
		bad("time", "%v", err)
	}
	if c.WindowEnd != "" {
		if _, err := parseClock(c.WindowEnd); err != nil {
			bad("window_end", "%v", err)
		} else if c.WindowEnd == c.Time {
			bad("window_end", "%q equals time, which would leave an empty window", c.WindowEnd)
		}
	}
	if _, err := c.location(); err != nil {
		bad("time_zone", "%v", err)
	}
	if c.BandwidthLimitKbps < 0 {
		bad("bandwidth_limit_kbps", "%d is negative (0 means unlimited)", c.BandwidthLimitKbps)
	}
	if c.BandwidthLimitKbps > 0 && c.BandwidthLimitKbps < 8 {
		bad("bandwidth_limit_kbps", "%d is below the minimum of 8 kbit/s", c.BandwidthLimitKbps)
	}
	if c.Retry.Initial <= 0 {
		bad("retry.initial", "%s must be positive", c.Retry.Initial)
	} else if c.Retry.Initial.D() < field.MinPeriod {
		bad("retry.initial", "%s is below the minimum of %v", c.Retry.Initial, field.MinPeriod)
	}
	if c.Retry.Max < c.Retry.Initial {
		bad("retry.max", "%s is below retry.initial %s", c.Retry.Max, c.Retry.Initial)
	}
	if c.Retry.Attempts < 0 {
		bad("retry.attempts", "%d is negative (0 means until the window ends)", c.Retry.Attempts)
	}
	if c.ConnectTimeout <= 0 {
		bad("connect_timeout", "%s must be positive", c.ConnectTimeout)
	}
	if u := strings.NewReplacer(idPlaceholder, "", id8Placeholder, "").Replace(c.User); strings.ContainsAny(u, "{}") {
		bad("user", "%q: only {id} and {id8} stand for something", c.User)
	}
	switch {
	case c.EnrollUser == "" && c.EnrollKeyFile != "":
		bad("enroll_user", "required with enroll_key_file")
	case c.EnrollUser != "" && c.EnrollKeyFile == "":
		bad("enroll_key_file", "required with enroll_user (the enrolment account's private key in the image)")
	case c.EnrollUser != "" && c.KeyFile != "":
		bad("enroll_user", "the probe enrols its own key; with key_file (a fleet key) there is none to enrol")
	case c.EnrollUser != "" && c.Auth != AuthKey:
		bad("enroll_user", "the probe enrols its own key: auth must be %q", AuthKey)
	}
	if c.PasswordRecipient != "" {
		if _, err := devicepw.ParseKey(c.PasswordRecipient); err != nil {
			bad("password_recipient", "%v (the public key `probe fleet password-key` prints)", err)
		}
	}
	if !c.Enabled {
		return es.Err()
	}
	if c.Server == "" {
		bad("server", "required when enabled (host:port)")
	} else if _, err := c.address(); err != nil {
		bad("server", "%v", err)
	}
	if c.User == "" {
		bad("user", "required when enabled")
	}
	if c.RemoteDir == "" {
		bad("remote_dir", "required when enabled")
	}
	if c.Auth == AuthPassword && c.Password == "" {
		bad("password", `required when auth is "password"`)
	}
	if c.HostKey == "" {
		bad("host_key", "required when enabled (a known_hosts line or a SHA256: fingerprint of the server's host key)")
	} else if _, err := parseHostKeyPin(c.HostKey); err != nil {
		bad("host_key", "%v", err)
	}
	if c.SentDir != "" && filepath.Clean(c.SentDir) == "." {
		bad("sent_dir", "%q is the queue directory itself", c.SentDir)
	}
	return es.Err()
}

// Warnings reports what is harmless but surely not meant, which earlier
// versions accepted: a SHA256: pin that is no digest (it matches no key,
// so the upload fails closed, as it always did).
func (c Config) Warnings() field.Errors {
	var es field.Errors
	if c.Enabled {
		if p := fingerprintProblem(c.HostKey); p != "" {
			es.Add("upload.host_key", "%s", p)
		}
	}
	return es
}

// address returns Server with the default port added.
func (c Config) address() (string, error) {
	s := strings.TrimSpace(c.Server)
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port: a bare host name or an unbracketed IPv6 address.
		if strings.Count(s, ":") == 1 {
			return "", fmt.Errorf("%q: %w", c.Server, err)
		}
		host, port = strings.Trim(s, "[]"), "22"
	}
	if host == "" {
		return "", fmt.Errorf("%q has no host", c.Server)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%q: port %q is not 1..65535", c.Server, port)
	}
	return net.JoinHostPort(host, port), nil
}

func (c Config) location() (*time.Location, error) {
	switch c.TimeZone {
	case "", "Local":
		return time.Local, nil
	}
	return time.LoadLocation(c.TimeZone)
}

// clockTime is a time of day.
type clockTime struct{ hour, min int }

func parseClock(s string) (clockTime, error) {
	h, m, err := daytime.Parse(s)
	return clockTime{h, m}, err
}

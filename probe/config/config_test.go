package config

import (
	"encoding/json"
	"errors"
	"github.com/presscap/presscap/probe/internal/capture"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config invalid:\n%v", err)
	}
}

func TestEmptyFileIsDefault(t *testing.T) {
	c, err := Parse([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, DefaultConfig()) {
		t.Fatalf("Parse({}) = %+v, want the defaults", c)
	}
}

func TestDefaultRoundTrips(t *testing.T) {
	b, err := json.MarshalIndent(DefaultConfig(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(marshalled default): %v\n%s", err, b)
	}
	if !reflect.DeepEqual(c, DefaultConfig()) {
		t.Fatalf("round trip changed the defaults:\n%s", b)
	}
}

func TestListsReplaceDefaults(t *testing.T) {
	c, err := Parse([]byte(`{"trigger": {"before": "10s", "devices": [{"name": "Presenter"}]},
		"exports": [{"name": "phone1", "filter": ""}, {"name": "phone2"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Trigger.Devices) != 1 || c.Trigger.Devices[0].Vendor != "" || c.Trigger.Devices[0].Keys != nil || c.Trigger.Devices[0].Name != "Presenter" {
		t.Errorf("devices = %+v: the default R400 entry leaked into the file's entry", c.Trigger.Devices)
	}
	if c.Trigger.Before.D() != 10*time.Second || c.Trigger.After.D() != 30*time.Second {
		t.Errorf("before/after = %v/%v, want 10s and the default 30s", c.Trigger.Before.D(), c.Trigger.After.D())
	}
	if len(c.Exports) != 2 || c.Exports[1].Name != "phone2" {
		t.Errorf("exports = %+v", c.Exports)
	}
	if !reflect.DeepEqual(c.Storage.FSTypes, DefaultConfig().Storage.FSTypes) {
		t.Errorf("an omitted list lost its default: %v", c.Storage.FSTypes)
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]Size{`"4GiB"`: 4 << 30, `"500MB"`: 500e6, `"100k"`: 100 << 10, `1048576`: 1 << 20, `"2 GiB"`: 2 << 30} {
		var s Size
		if err := json.Unmarshal([]byte(in), &s); err != nil || s != want {
			t.Errorf("Size(%s) = %d, %v; want %d", in, s, err, want)
		}
	}
	for _, in := range []string{`"4XB"`, `"GiB"`, `-5`, `1.5`, `true`, `"99999999999TiB"`} {
		var s Size
		if err := json.Unmarshal([]byte(in), &s); err == nil {
			t.Errorf("Size(%s) = %d, want an error", in, s)
		}
	}
}

// TestParseErrors: errors in the file itself name the field (or line).
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"trigger": {"befor": "10s"}}`, "trigger.befor: unknown field"},
		{`{"exports": [{"name": "a", "filtr": "tcp"}]}`, "exports[0].filtr: unknown field"},
		{`{"trigger": {"before": 10}}`, `trigger.before: bad value 10`},
		{`{"trigger": {"after": "ten seconds"}}`, `trigger.after: bad value "ten seconds"`},
		{`{"ring": {"size": "lots"}}`, `ring.size: bad value "lots"`},
		{`{"ring": {"expected_mbps": "fast"}}`, `ring.expected_mbps: got string, want a number`},
		{`{"trigger": {"grab": "yes"}}`, `trigger.grab: got string, want true or false`},
		{`{"links": {"interface": "eth0"}}`, `links: got object, want a list`},
		{`{"status": {"listen": "private:8080"}}`, `status.listen: got string, want a list`},
		{"{\n  \"trigger\": {\n    \"before\": \"10s\",\n  }\n}", "line 4, column 3"},
		{`{"trigger": `, "unexpected end of JSON input"},
		{`[1, 2]`, "(top level): must be a JSON object"},
		{`{"beeper": {"volum": 3}}`, "beeper.volum: unknown field"},
	} {
		_, err := Parse([]byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s) = %v, want an error containing %q", tc.json, err, tc.want)
		}
	}
}

// TestParseNamesEveryTypeError: values of the wrong type are all named in
// one run, each by its field (a list element by its index), not only the
// first the decoder meets.
func TestParseNamesEveryTypeError(t *testing.T) {
	_, err := Parse([]byte(`{"trigger": {"after": "xs", "before": 5}, "beeper": {"volume": "a"},
		"exports": [{"name": 3}, {"name": "a", "filter": 4}], "ring": {"size": "1x", "max_age": 9223372036854775807}}`))
	want := []string{
		`beeper.volume: got string, want an integer`,
		`exports[0].name: got number, want a string`,
		`exports[1].filter: got number, want a string`,
		`ring.max_age: bad value 9223372036854775807`,
		`ring.size: bad value "1x"`,
		`trigger.after: bad value "xs"`,
		`trigger.before: bad value 5`,
	}
	var es Errors
	if !errors.As(err, &es) || len(es) != len(want) {
		t.Fatalf("Parse: %v; want %d field errors", err, len(want))
	}
	for i, w := range want {
		if !strings.Contains(es[i].Error(), w) {
			t.Errorf("error %d: %v, want %q", i, es[i], w)
		}
	}
	// Numbers are judged as written: the largest int64 fits an integer.
	if _, err := Parse([]byte(`{"beeper": {"volume": 9223372036854775807}, "trigger": {"grab": 1}}`)); err == nil ||
		strings.Contains(err.Error(), "volume") || !strings.Contains(err.Error(), "trigger.grab") {
		t.Errorf("Parse: %v; want trigger.grab alone", err)
	}
}

// TestValidateErrors covers every check Validate makes: each case breaks
// one thing and must get exactly the named field.
func TestValidateErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(c *Config)
		field string
		want  string
	}{
		{"hostname", func(c *Config) { c.Hostname = "my box" }, "hostname", "not usable in a file name"},
		{"release key", func(c *Config) { c.Release.PublicKeys = []string{"AAAA"} }, "release.public_keys[0]", "32-byte ed25519 public key"},
		{"no links", func(c *Config) { c.Links = nil }, "links", "at least one"},
		{"empty interface", func(c *Config) { c.Links = []Link{{}} }, "links[0].interface", "is empty"},
		{"bad interface", func(c *Config) { c.Links = []Link{{Interface: "eth0/1"}} }, "links[0].interface", "not an interface name"},
		{"long interface", func(c *Config) { c.Links = []Link{{Interface: "abcdefghijklmnop"}} }, "links[0].interface", "not an interface name"},
		{"bad link name", func(c *Config) { c.Links = []Link{{Interface: "eth0", Name: "a b"}} }, "links[0].name", "not usable"},
		{"duplicate link", func(c *Config) { c.Links = []Link{{Interface: "eth0"}, {Interface: "eth1", Name: "eth0"}} }, "links[1].name", "listed twice"},
		// The capture opens each interface once: passed here, the service
		// would refuse to start on a configuration probe check accepted.
		{"interface twice", func(c *Config) { c.Links = []Link{{Interface: "eth0", Name: "a"}, {Interface: "eth0", Name: "b"}} }, "links[1].interface", "listed twice"},
		{"ring dir abs", func(c *Config) { c.Ring.Dir = "/ring" }, "ring.dir", "relative"},
		{"ring dir up", func(c *Config) { c.Ring.Dir = "../ring" }, "ring.dir", "leaves the storage root"},
		{"ring dir empty", func(c *Config) { c.Ring.Dir = "" }, "ring.dir", "is empty"},
		{"ring small", func(c *Config) { c.Ring.Size = 1 << 20 }, "ring.size", "too small"},
		{"ring below the ring's minimum", func(c *Config) { c.Ring.Size = 63 << 20 }, "ring.size", "too small (at least 64MiB)"},
		{"max age negative", func(c *Config) { c.Ring.MaxAge = -1 }, "ring.max_age", "negative"},
		{"rate", func(c *Config) { c.Ring.ExpectedMbps = 0 }, "ring.expected_mbps", "positive"},
		{"ring snaplen", func(c *Config) { c.Ring.Snaplen = 20 }, "ring.snaplen", "too small"},
		{"rule both", func(c *Config) { c.Ring.Rules = []RingRule{{Filter: "x", Discard: true, Snaplen: 100}} }, "ring.rules[0]", "both discard and snaplen"},
		{"rule snaplen", func(c *Config) { c.Ring.Rules = []RingRule{{Filter: "x", Snaplen: 10}} }, "ring.rules[0].snaplen", "too small"},
		{"rule snaplen too large", func(c *Config) { c.Ring.Rules = []RingRule{{Filter: "udp", Snaplen: 1 << 20}} }, "ring.rules[0].snaplen", "over the maximum"},
		{"rules too long", func(c *Config) {
			c.Ring.Rules = []RingRule{{Filter: "port 53 or port 5060 or port 67 or port 68 or port 546 or port 547 or icmp or icmp6"}, {Filter: "ip or ip6", Snaplen: 160}}
		}, "ring.rules", "jump too long"},
		{"rule bad filter", func(c *Config) { c.Ring.Rules = []RingRule{{Filter: "udp portrange 9-"}} }, "ring.rules[0].filter", "does not compile"},
		{"before zero", func(c *Config) { c.Trigger.Before = 0 }, "trigger.before", "positive"},
		{"after negative", func(c *Config) { c.Trigger.After = Duration(-time.Second) }, "trigger.after", "must not be negative"},
		{"window exceeds history", func(c *Config) { c.Ring.Size = 64 << 20; c.Ring.ExpectedMbps = 100 }, "trigger.before", "exceeds the 5s of history"},
		{"window exceeds max age", func(c *Config) { c.Ring.MaxAge = Duration(time.Minute) }, "trigger.before", "exceeds ring.max_age 1m0s"},
		{"repeat", func(c *Config) { c.Trigger.Repeat = "merge" }, "trigger.repeat", "not one of extend"},
		{"max window", func(c *Config) { c.Trigger.MaxWindow = Duration(time.Minute) }, "trigger.max_window", "shorter than before + after"},
		{"input dir", func(c *Config) { c.Trigger.InputDir = "dev/input" }, "trigger.input_dir", "absolute"},
		{"rescan", func(c *Config) { c.Trigger.Rescan = 0 }, "trigger.rescan", "positive"},
		{"no devices", func(c *Config) { c.Trigger.Devices = nil }, "trigger.devices", "no device"},
		{"vendor", func(c *Config) { c.Trigger.Devices[0].Vendor = "logitech" }, "trigger.devices[0].vendor", "hex"},
		{"product", func(c *Config) { c.Trigger.Devices[0].Product = "12345" }, "trigger.devices[0].product", "hex"},
		{"any device", func(c *Config) { c.Trigger.Devices = []Device{{}} }, "trigger.devices[0]", "matches every input device"},
		{"key", func(c *Config) { c.Trigger.Devices[0].Keys = []string{"KEY_PAGEUP", "KEY_NEXTSLIDE"} }, "trigger.devices[0].keys[1]", "unknown key"},
		{"profile name", func(c *Config) { c.Trigger.Profiles = []Profile{{Name: "Phone_1"}} }, "trigger.profiles[0].name", "not a profile name"},
		{"profile dup", func(c *Config) { c.Trigger.Profiles = []Profile{{Name: "tv"}, {Name: "tv"}} }, "trigger.profiles[1].name", "used twice"},
		{"profile key unknown", func(c *Config) { c.Trigger.Profiles = []Profile{{Name: "tv", Keys: []string{"KEY_NOPE"}}} }, "trigger.profiles[0].keys[0]", "unknown key"},
		{"profile key not sent", func(c *Config) { c.Trigger.Profiles = []Profile{{Name: "tv", Keys: []string{"KEY_A"}}} }, "trigger.profiles[0].keys[0]", "not among the keys"},
		{"profile key twice", func(c *Config) {
			c.Trigger.Profiles = []Profile{{Name: "tv", Keys: []string{"KEY_DOT"}}, {Name: "phone", Keys: []string{"KEY_DOT"}}}
		}, "trigger.profiles[1].keys[0]", `already presses profile "tv"`},
		{"profile before", func(c *Config) { c.Trigger.Profiles = []Profile{{Name: "tv", Before: Duration(-time.Second)}} }, "trigger.profiles[0].before", "not between"},
		{"profile max age", func(c *Config) {
			c.Ring.MaxAge = Duration(5 * time.Minute)
			c.Trigger.Profiles = []Profile{{Name: "tv", Before: Duration(10 * time.Minute)}}
		}, "trigger.profiles[0].before", "exceeds ring.max_age"},
		{"profile max window", func(c *Config) { c.Trigger.Profiles = []Profile{{Name: "tv", Before: Duration(time.Hour)}} }, "trigger.max_window", `profile "tv"`},
		{"profile export", func(c *Config) {
			c.Trigger.Profiles = []Profile{{Name: "tv", Exports: []Export{{Name: "a", Filter: "udp portrange 9-"}}}}
		}, "trigger.profiles[0].exports[0].filter", "does not compile"},
		{"too many profiles", func(c *Config) { c.Trigger.Profiles = make([]Profile, MaxProfiles+1) }, "trigger.profiles", "at most 8"},
		{"no exports", func(c *Config) { c.Exports = nil }, "exports", "at least one"},
		{"export name", func(c *Config) { c.Exports = []Export{{Name: "phone/1"}} }, "exports[0].name", "not usable"},
		{"export name empty", func(c *Config) { c.Exports = []Export{{}} }, "exports[0].name", "not usable"},
		{"export dup", func(c *Config) { c.Exports = []Export{{Name: "a"}, {Name: "a"}} }, "exports[1].name", "used twice"},
		{"export link", func(c *Config) { c.Exports = []Export{{Name: "a", Link: "wan"}} }, "exports[0].link", "not a link name or a side"},
		{"export format", func(c *Config) { c.Exports[0].Format = "erf" }, "exports[0].format", "not one of pcap, pcapng"},
		{"no disk", func(c *Config) { c.Storage.Label = ""; c.Storage.FirstUSB = false }, "storage", "no way to find a disk"},
		{"label", func(c *Config) { c.Storage.Label = "ABCDEFGHIJKLMNOPQ" }, "storage.label", "longer than"},
		{"device", func(c *Config) { c.Storage.Device = "sda1" }, "storage.device", "absolute"},
		{"mount point", func(c *Config) { c.Storage.MountPoint = "/" }, "storage.mount_point", "absolute path below /"},
		{"perm dir", func(c *Config) { c.Storage.PermDir = "perm" }, "storage.perm_dir", "absolute"},
		{"state dir", func(c *Config) { c.Storage.StateDir = "state" }, "storage.state_dir", "absolute"},
		{"upload section", func(c *Config) { c.Upload.Enabled = true }, "upload.server", ""},
		{"sys block", func(c *Config) { c.Storage.SysBlock = "" }, "storage.sys_block", "absolute"},
		{"dev dir", func(c *Config) { c.Storage.DevDir = "dev" }, "storage.dev_dir", "absolute"},
		{"fs types empty", func(c *Config) { c.Storage.FSTypes = nil }, "storage.fs_types", "is empty"},
		{"fs type", func(c *Config) { c.Storage.FSTypes = []string{"ext4", "ntfs"} }, "storage.fs_types[1]", "not a supported"},
		{"output", func(c *Config) { c.Storage.Output = "sftp" }, "storage.output", "not one of queue, root"},
		{"queue dir", func(c *Config) { c.Storage.QueueDir = "/queue" }, "storage.queue_dir", "relative"},
		{"save dir", func(c *Config) { c.Storage.SaveDir = ".." }, "storage.save_dir", "leaves"},
		{"ring is output", func(c *Config) { c.Storage.QueueDir = "ring" }, "ring.dir", "same directory or one holds the other"},
		{"retry", func(c *Config) { c.Storage.Retry = 0 }, "storage.retry", "positive"},
		{"clock", func(c *Config) { c.Clock.Sync = "ntp" }, "clock.sync", "not one of"},
		{"listen", func(c *Config) { c.Status.Listen = []string{"private"} }, "status.listen[0]", "bad address"},
		{"listen host", func(c *Config) { c.Status.Listen = []string{"example.com:80"} }, "status.listen[0]", "IP address"},
		{"listen port", func(c *Config) { c.Status.Listen = []string{":http"} }, "status.listen[0]", "bad port"},
		{"token", func(c *Config) { c.Status.Token = "short" }, "status.token", "shorter than 16"},
		{"recent", func(c *Config) { c.Status.RecentPresses = -1 }, "status.recent_presses", "negative"},
		{"beeper section", func(c *Config) { c.Beeper.Volume = 300 }, "beeper.volume", "outside"},
		{"time zone", func(c *Config) { c.Clock.TimeZone = "Mars/Olympus" }, "clock.time_zone", "IANA name"},
		{"quiet hours", func(c *Config) { c.Beeper.Quiet = "21:00" }, "beeper.quiet", "not HH:MM-HH:MM"},
		{"release channel", func(c *Config) { c.Release.Channel = "../stable" }, "release.channel", "plain directory name"},
		{"release channel empty", func(c *Config) { c.Release.Channel = "" }, "release.channel", "plain directory name"},
		{"release check", func(c *Config) { c.Release.CheckInterval = Duration(10 * time.Second) }, "release.check_interval", "shorter than 1m0s"},
		{"release quiet", func(c *Config) { c.Release.QuietAfterPress = -1 }, "release.quiet_after_press", "negative"},
		{"release window", func(c *Config) { c.Release.Window = "03:00" }, "release.window", "not HH:MM-HH:MM"},
		{"release window hour", func(c *Config) { c.Release.Window = "03:00-25:00" }, "release.window", "time of day"},
		{"release confirm", func(c *Config) { c.Release.ConfirmWithin = Duration(2 * time.Hour) }, "release.confirm_within", "want 30s to 1h0m0s"},
		{"tunnel check", func(c *Config) { c.Tunnel.CheckInterval = Duration(time.Second) }, "tunnel.check_interval", "want 10s to 1h0m0s"},
		{"tunnel duration", func(c *Config) { c.Tunnel.MaxDuration = Duration(48 * time.Hour) }, "tunnel.max_duration", "want 1m0s to 24h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Validate = %v, want Errors", err)
			}
			for _, e := range es {
				if e.Field == tc.field && strings.Contains(e.Error(), tc.want) {
					return
				}
			}
			t.Fatalf("Validate = %v\nwant field %s: ...%s...", err, tc.field, tc.want)
		})
	}
}

func TestHistory(t *testing.T) {
	c := DefaultConfig()
	c.Ring.Size = 1 << 30
	c.Ring.ExpectedMbps = 8
	// 2^30 bytes * 8 bits / 8e6 bit/s = 1073.741824 s.
	if got, want := c.History(), time.Duration(1073741824)*time.Microsecond; got != want {
		t.Errorf("History = %v, want %v", got, want)
	}
	c.Ring.MaxAge = Duration(10 * time.Minute)
	if got := c.History(); got != 10*time.Minute {
		t.Errorf("History with max_age = %v", got)
	}
}

func TestFindSearchOrder(t *testing.T) {
	noEnv := func(string) string { return "" }
	if p, err := Find("/x/flag.json", func(string) string { return "/x/env.json" }); err != nil || p != "/x/flag.json" {
		t.Errorf("flag: %q %v", p, err)
	}
	if p, err := Find("", func(k string) string {
		if k == EnvVar {
			return "/x/env.json"
		}
		return ""
	}); err != nil || p != "/x/env.json" {
		t.Errorf("env: %q %v", p, err)
	}
	p, err := Find("", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := ""
	for _, sp := range SearchPaths() {
		if _, err := os.Stat(sp); err == nil {
			want = sp
			break
		}
	}
	if p != want {
		t.Errorf("search: %q, want %q", p, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.json")
	os.WriteFile(p, []byte(`{"trigger": {"after": "5s"}}`), 0o644)
	c, err := Load(p)
	if err != nil || c.Trigger.After.D() != 5*time.Second {
		t.Fatalf("Load = %+v, %v", c.Trigger, err)
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v", err)
	}
	os.WriteFile(p, []byte(`{"trigger": {"aftr": "5s"}}`), 0o644)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "trigger.aftr") {
		t.Errorf("Load(bad) = %v, want the path and the field", err)
	}
}

// ring.rules is written exactly like a `probe capture -rules` file, with
// an empty filter matching every packet, so one rule list serves both.
func TestRingRulesShareTheCaptureFormat(t *testing.T) {
	list := `[{"filter": "udp portrange 10000-20000", "snaplen": 96}, {"filter": "port 22", "discard": true}, {"filter": "", "discard": true}]`
	c, err := Parse([]byte(`{"ring": {"rules": ` + list + `}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	file, err := capture.ParseRules([]byte(list))
	if err != nil {
		t.Fatal(err)
	}
	if len(file) != len(c.Ring.Rules) {
		t.Fatalf("config holds %d rules, the rules file %d", len(c.Ring.Rules), len(file))
	}
	for i := range file {
		if file[i] != c.Ring.Rules[i] {
			t.Errorf("rule %d: config %+v, rules file %+v", i, c.Ring.Rules[i], file[i])
		}
	}
}

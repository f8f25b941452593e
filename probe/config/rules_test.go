package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fields returns the field names of the problems in err (Errors) and ws.
func fields(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("Validate = %v (%T), want Errors", err, err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Field)
	}
	return out
}

func has(list []string, f string) bool {
	for _, x := range list {
		if x == f {
			return true
		}
	}
	return false
}

// TestStricterRules: each rule this version adds, on a file as an earlier
// version would have accepted it. What is unsafe is refused, naming the
// field; what is harmless is a warning naming the field, and the probe
// starts (Validate passes).
func TestStricterRules(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		refused    string // the field refused, or ""
		warned     string // the field warned about, or ""
	}{
		// Paths, compared after cleaning and without case.
		{"ring ./queue", `{"ring": {"dir": "./upload-queue"}}`, "ring.dir", ""},
		{"ring x/../queue", `{"ring": {"dir": "x/../upload-queue"}}`, "ring.dir", ""},
		{"ring queue/", `{"ring": {"dir": "upload-queue/"}}`, "ring.dir", ""},
		{"ring Queue (vfat folds case)", `{"ring": {"dir": "Upload-Queue"}}`, "ring.dir", ""},
		{"ring inside the queue", `{"ring": {"dir": "upload-queue/ring"}}`, "ring.dir", ""},
		{"queue inside the ring", `{"storage": {"queue_dir": "ring/q"}}`, "ring.dir", ""},
		{"save dir is ./ring", `{"storage": {"save_dir": "./ring"}}`, "ring.dir", ""},
		{"output root into the ring", `{"storage": {"output": "root", "save_dir": "ring/out"}}`, "ring.dir", ""},
		{"output root holding the ring", `{"ring": {"dir": "captures/ring"}, "storage": {"output": "root"}}`, "ring.dir", ""},
		{"unused save dir in the ring", `{"storage": {"save_dir": "ring/out"}}`, "", "storage.save_dir"},
		{"save dir is the queue", `{"storage": {"output": "root", "save_dir": "./upload-queue"}}`, "", "storage.save_dir"},
		{"save dir in the queue", `{"storage": {"output": "root", "save_dir": "upload-queue/kept"}}`, "", "storage.save_dir"},
		{"queue is the root", `{"storage": {"queue_dir": "."}}`, "storage.queue_dir", ""},
		{"ring is the root", `{"ring": {"dir": "x/.."}}`, "ring.dir", ""},
		// Durations: overflow of the window refused, of the rest harmless.
		// (Earlier versions let before + after wrap to a negative window,
		// which passed every check.)
		{"before overflows", `{"trigger": {"before": "2562047h", "after": "1h"}}`, "trigger.before", ""},
		{"before + after overflows", `{"trigger": {"before": "1281024h", "after": "1281025h"}}`, "trigger.after", ""},
		{"max_window overflows", `{"trigger": {"max_window": "2562047h"}}`, "trigger.max_window", ""},
		{"max_age over the maximum", `{"ring": {"max_age": "876000h"}}`, "", "ring.max_age"},
		{"retry over the maximum", `{"storage": {"retry": "2562047h"}}`, "", "storage.retry"},
		{"upload retry over the maximum", `{"upload": {"retry": {"max": "2562047h"}}}`, "", "upload.retry.max"},
		// Polling periods below 100 ms: raised.
		{"rescan 10ms", `{"trigger": {"rescan": "10ms"}}`, "", "trigger.rescan"},
		{"retry 1ns", `{"storage": {"retry": "1ns"}}`, "", "storage.retry"},
		{"upload retry 1ms", `{"upload": {"retry": {"initial": "1ms", "max": "50ms"}}}`, "", "upload.retry.initial"},
		{"rescan 0 still refused", `{"trigger": {"rescan": "0s"}}`, "trigger.rescan", ""},
		// The token: ignored when weak, refused when short (as before).
		{"token one letter", `{"status": {"token": "aaaaaaaaaaaaaaaa"}}`, "", "status.token"},
		{"token spaces", `{"status": {"token": "                "}}`, "", "status.token"},
		{"token 9 distinct", `{"status": {"token": "abcdefghiabcdefghi"}}`, "", "status.token"},
		{"token of 16 bytes, 6 characters", `{"status": {"token": "äöüäöüäö"}}`, "", "status.token"},
		{"token short", `{"status": {"token": "0123456789abcde"}}`, "status.token", ""},
		// The SFTP server's key.
		{"host key @revoked", `{"upload": {"enable": true, "server": "s", "user": "u", "remote_dir": "/in", "host_key": "@revoked s ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOvLRgktC3q2zlaqrQM+us3AQNUF5+lpiscwzIJO+ytB"}}`, "upload.host_key", ""},
		{"host key @cert-authority", `{"upload": {"enable": true, "server": "s", "user": "u", "remote_dir": "/in", "host_key": "@cert-authority *.example.net ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOvLRgktC3q2zlaqrQM+us3AQNUF5+lpiscwzIJO+ytB"}}`, "upload.host_key", ""},
		{"fingerprint not base64", `{"upload": {"enable": true, "server": "s", "user": "u", "remote_dir": "/in", "host_key": "SHA256:` + strings.Repeat("!", 43) + `"}}`, "", "upload.host_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate()
			refused := fields(t, err)
			if tc.refused == "" && err != nil {
				t.Errorf("refused: %v; want it to start with a warning", err)
			}
			if tc.refused != "" && !has(refused, tc.refused) {
				t.Errorf("Validate = %v; want %s refused", err, tc.refused)
			}
			warned := fields(t, c.Warnings().Err())
			if tc.warned != "" && !has(warned, tc.warned) {
				t.Errorf("Warnings = %v; want one for %s", c.Warnings(), tc.warned)
			}
			if tc.warned == "" && len(warned) > 0 {
				t.Errorf("Warnings = %v; want none", c.Warnings())
			}
		})
	}
}

// TestCorrectedValues: what Parse corrects is what the probe then uses.
func TestCorrectedValues(t *testing.T) {
	c, err := Parse([]byte(`{"trigger": {"rescan": "10ms"}, "storage": {"retry": "1ns"},
		"upload": {"retry": {"initial": "1ms", "max": "50ms"}}, "status": {"token": "aaaaaaaaaaaaaaaa"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Trigger.Rescan.D() != MinPeriod || c.Storage.Retry.D() != MinPeriod ||
		time.Duration(c.Upload.Retry.Initial) != MinPeriod || time.Duration(c.Upload.Retry.Max) != MinPeriod {
		t.Errorf("periods %v %v %v %v, want all %v", c.Trigger.Rescan.D(), c.Storage.Retry.D(), c.Upload.Retry.Initial, c.Upload.Retry.Max, MinPeriod)
	}
	if c.Status.Token != "" {
		t.Errorf("weak token %q still honoured", c.Status.Token)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	// A configuration built in code gets no correction: it is refused.
	d := DefaultConfig()
	d.Trigger.Rescan = Duration(50 * time.Millisecond)
	d.Storage.Retry = Duration(time.Millisecond)
	d.Upload.Retry.Initial = 1
	d.Status.Token = strings.Repeat("ab", 8)
	got := fields(t, d.Validate())
	for _, f := range []string{"trigger.rescan", "storage.retry", "upload.retry.initial", "status.token"} {
		if !has(got, f) {
			t.Errorf("Validate of a config built in code: %v, want %s refused", got, f)
		}
	}
	d = DefaultConfig()
	d.Status.Token = "correct horse battery"
	if err := d.Validate(); err != nil {
		t.Errorf("a token of 11 distinct characters: %v", err)
	}
}

// TestEverySectionEveryProblem: one run names every field at fault in
// every section, those other packages own included.
func TestEverySectionEveryProblem(t *testing.T) {
	c, err := Parse([]byte(`{"hostname": "a b", "upload": {"enable": true, "server": "x"},
		"beeper": {"volume": 300, "rate": 1}, "leds": {"driver": "sysfs", "sysfs_root": "", "sysfs_name": ".."},
		"trigger": {"before": "0s", "rescan": "0s"}, "storage": {"retry": "0s", "output": "nowhere"}}`))
	if err != nil {
		t.Fatal(err)
	}
	got := fields(t, c.Validate())
	for _, f := range []string{"hostname", "upload.user", "upload.remote_dir", "upload.host_key",
		"beeper.volume", "beeper.rate", "leds.sysfs_root", "leds.sysfs_name",
		"trigger.before", "trigger.rescan", "storage.retry", "storage.output"} {
		if !has(got, f) {
			t.Errorf("Validate names %v; %s is missing", got, f)
		}
	}
}

// TestEveryUnknownField: a file's unknown fields are all named in one run.
func TestEveryUnknownField(t *testing.T) {
	_, err := Parse([]byte(`{"trigger": {"befor": "1s", "aftr": "1s"}, "beeper": {"volum": 3}, "exports": [{"name": "a"}, {"nme": "b"}]}`))
	got := fields(t, err)
	for _, f := range []string{"trigger.befor", "trigger.aftr", "beeper.volum", "exports[1].nme"} {
		if !has(got, f) {
			t.Errorf("Parse names %v; %s is missing", got, f)
		}
	}
}

// TestAfterZero: after "0s" ends the window at the press, and the
// history check still holds before + 0 against the ring.
func TestAfterZero(t *testing.T) {
	c, err := Parse([]byte(`{"trigger": {"after": "0s"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("after 0: %v", err)
	}
	c.Ring.Size, c.Ring.ExpectedMbps = 64<<20, 100 // about 5 s of history
	if got := fields(t, c.Validate()); !has(got, "trigger.before") {
		t.Errorf("before 60s + after 0 over 5 s of history: %v, want trigger.before refused", got)
	}
	c = DefaultConfig()
	c.Trigger.Repeat, c.Trigger.MaxWindow = RepeatExtend, c.Trigger.Before
	if err := c.Validate(); err == nil {
		// max_window = before is shorter than before + the default 30 s.
		t.Error("max_window below before + after accepted")
	}
	c.Trigger.After = 0
	if err := c.Validate(); err != nil {
		t.Errorf("max_window = before with after 0: %v", err)
	}
}

// TestSaveDirRoot: save_dir "." is the storage root, for output root.
func TestSaveDirRoot(t *testing.T) {
	for _, js := range []string{`{"storage": {"output": "root", "save_dir": "."}}`, `{"storage": {"output": "root", "save_dir": "./"}}`} {
		c, err := Parse([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", js, err)
		}
		if w := c.Warnings(); len(w) > 0 {
			t.Errorf("%s: warnings %v", js, w)
		}
	}
}

// TestHistoryDoesNotWrap: a ring that holds more than a Duration can say
// holds as much as one can, not a negative span.
func TestHistoryDoesNotWrap(t *testing.T) {
	c := DefaultConfig()
	c.Ring.Size, c.Ring.ExpectedMbps, c.Ring.MaxAge = 1<<40, 1e-9, 0
	if h := c.History(); h < MaxDuration {
		t.Fatalf("History = %v", h)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestEveryDurationIsBounded: every duration field of the configuration
// is in durations(), so a new one cannot escape the overflow bound.
func TestEveryDurationIsBounded(t *testing.T) {
	var walk func(typ reflect.Type, prefix string) []string
	walk = func(typ reflect.Type, prefix string) []string {
		var out []string
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			switch {
			case f.Type.Name() == "Duration":
				out = append(out, prefix+name)
			case f.Type.Kind() == reflect.Struct:
				out = append(out, walk(f.Type, prefix+name+".")...)
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
				out = append(out, walk(f.Type.Elem(), prefix+name+"[].")...)
			}
		}
		return out
	}
	var listed []string
	for _, d := range DefaultConfig().durations() {
		listed = append(listed, d.field)
	}
	for _, f := range walk(reflect.TypeOf(Config{}), "") {
		if !has(listed, f) {
			t.Errorf("duration field %s is not in durations()", f)
		}
	}
}

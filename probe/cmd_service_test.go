package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/internal/status"
)

func TestCheckPrintDefaultIsValid(t *testing.T) {
	var out, errb bytes.Buffer
	if err := dispatch(context.Background(), env{stdout: &out, stderr: &errb}, []string{"check", "-print-default"}); err != nil {
		t.Fatal(err)
	}
	// The committed default (shipped in the image as
	// /etc/presscap/config.json) is exactly what the code prints, so it
	// cannot fall behind new fields or changed defaults.
	shipped, err := os.ReadFile("config/testdata/default.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(shipped, out.Bytes()) {
		t.Errorf("probe/config/testdata/default.json differs from `probe check -print-default`; regenerate it with\n"+
			"  go run ./probe check -print-default > probe/config/testdata/default.json\nfirst difference: %s",
			firstDiff(shipped, out.Bytes()))
	}
	p := filepath.Join(t.TempDir(), "default.json")
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := dispatch(context.Background(), env{stdout: &out, stderr: &errb}, []string{"check", "-config", p}); err != nil {
		t.Fatalf("check of the printed default: %v", err)
	}
	if !strings.Contains(out.String(), p+": OK") {
		t.Errorf("check output: %q", out.String())
	}
	// The default shipped for the image is the same configuration.
	c, err := config.Load("config/testdata/default.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// firstDiff shows the first line where a and b differ.
func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y || i >= len(al) || i >= len(bl) {
			return fmt.Sprintf("line %d: file %q, printed %q", i+1, x, y)
		}
	}
	return "none"
}

// TestCheckWarns: a configuration an earlier version accepted and this
// one corrects passes check, which says what it corrected.
func TestCheckWarns(t *testing.T) {
	p := filepath.Join(t.TempDir(), "old.json")
	os.WriteFile(p, []byte(`{"trigger": {"rescan": "10ms"}}`), 0o644)
	var out, errb bytes.Buffer
	if err := dispatch(context.Background(), env{stdout: &out, stderr: &errb}, []string{"check", "-config", p}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), p+": OK") || !strings.Contains(out.String(), "warning: trigger.rescan: 10ms is below the minimum of 100ms: using 100ms") {
		t.Errorf("check output: %q", out.String())
	}
}

// TestCheckShippedButtons: check passes the Pi image's configuration
// without a warning and lists what each button saves, in the order the
// acknowledgement counts.
func TestCheckShippedButtons(t *testing.T) {
	var out, errb bytes.Buffer
	if err := dispatch(context.Background(), env{stdout: &out, stderr: &errb}, []string{"check", "-config", "../gokrazy/presscap/probe.json"}); err != nil {
		t.Fatal(err)
	}
	want := "profile 1 phone (KEY_PAGEUP): 2m0s before + 30s after; voip\n" +
		"profile 2 internet (KEY_PAGEDOWN): 1m0s before + 1m0s after; the exports above\n" +
		"profile 3 tv (KEY_F5 KEY_ESC): 1m0s before + 1m0s after; the exports above\n" +
		"profile 4 other (KEY_DOT): 1m0s before + 30s after; the exports above\n"
	if !strings.HasSuffix(out.String(), want) || strings.Contains(out.String(), "warning") {
		t.Errorf("check output:\n%s\nwant it to end with:\n%s", out.String(), want)
	}
}

// TestCheckAfterZero: a window that ends at the press passes check, which
// still holds before + 0 against the history the ring holds.
func TestCheckAfterZero(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(p, []byte(`{"trigger": {"after": "0s"}}`), 0o644)
	var out, errb bytes.Buffer
	if err := dispatch(context.Background(), env{stdout: &out, stderr: &errb}, []string{"check", "-config", p}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "window: 1m0s before + 0s after") {
		t.Errorf("check output: %q", out.String())
	}
	os.WriteFile(p, []byte(`{"trigger": {"after": "0s"}, "ring": {"size": "64MiB", "expected_mbps": 100}}`), 0o644)
	err := dispatch(context.Background(), env{stdout: &out, stderr: &errb}, []string{"check", "-config", p})
	if err == nil || !strings.Contains(err.Error(), "trigger.before: before + after = 1m0s exceeds the 5s of history") {
		t.Errorf("check of 60 s + 0 over a 5 s ring: %v", err)
	}
}

func TestCheckNamesFieldAndProblem(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(p, []byte(`{"trigger": {"before": "0s", "repeat": "sometimes"}, "upload": {"enable": true, "server": "x"}}`), 0o644)
	var out, errb bytes.Buffer
	err := dispatch(context.Background(), env{stdout: &out, stderr: &errb}, []string{"check", "-config", p})
	if err == nil {
		t.Fatal("check accepted a bad config")
	}
	for _, want := range []string{p, "trigger.before: must be positive", `trigger.repeat: "sometimes" is not one of`,
		"upload.user: required", "upload.remote_dir: required", "upload.host_key: required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("check error lacks %q:\n%v", want, err)
		}
	}
}

// TestCheckRefusesModeAgainstDHCP: probe check on a device whose image
// runs the DHCP client on eth0 refuses inline mode over eth0, naming the
// port; with the client on the bridge the same file is valid.
func TestCheckRefusesModeAgainstDHCP(t *testing.T) {
	p := filepath.Join(t.TempDir(), "inline.json")
	os.WriteFile(p, []byte(`{"network": {"mode": "inline", "ports": [{"interface": "eth0"}, {"interface": "eth1"}]}}`), 0o644)
	check := func() error {
		var out, errb bytes.Buffer
		return dispatch(context.Background(), env{stdout: &out, stderr: &errb}, []string{"check", "-config", p})
	}
	t.Setenv(config.DHCPEnv, "eth0")
	if err := check(); err == nil || !strings.Contains(err.Error(), `network.ports[0].interface: "eth0" is where the image's DHCP client runs`) {
		t.Errorf("check with the DHCP client on eth0 = %v", err)
	}
	t.Setenv(config.DHCPEnv, "br0")
	if err := check(); err != nil {
		t.Errorf("check with the DHCP client on br0 = %v", err)
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(p, []byte(`{"exports": [{"name": "a/b"}]}`), 0o644)
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := dispatch(ctx, env{stdout: &out, stderr: &errb}, []string{"run", "-config", p})
	if err == nil || !strings.Contains(err.Error(), "exports[0].name") {
		t.Fatalf("run with a bad config = %v", err)
	}
	if !strings.Contains(out.String(), "NOT RUNNING, bad configuration") || !strings.Contains(out.String(), "exports[0].name") {
		t.Errorf("stdout does not say why: %q", out.String())
	}
}

// TestRunAndTrigger runs the service binary's code path (`probe run`) on a
// veth pair and presses with `probe trigger`, which finds the status
// listener and the token in the same configuration.
func TestRunAndTrigger(t *testing.T) {
	pair := netnstest.NewPair(t)
	addr := freeLoopbackAddr(t)
	c := runConfig(t, pair.Host, addr)
	// Below today's minimum, as an earlier version accepted: the service
	// still starts (at 100ms) and says so.
	c.Storage.Retry = config.Duration(10 * time.Millisecond)
	cfgPath, out := startRun(t, c)
	if !strings.Contains(out.String(), "configuration warning: storage.retry: 10ms is below the minimum of 100ms: using 100ms") {
		t.Errorf("run does not log the corrected storage.retry:\n%s", out.String())
	}
	if said := pressTrigger(t, cfgPath); !strings.Contains(said, "window #1 opened") {
		t.Errorf("trigger said %q", said)
	}
	var tout, terr bytes.Buffer
	// A wrong token is refused.
	if err := dispatch(context.Background(), env{stdout: &tout, stderr: &terr}, []string{"trigger", "-config", cfgPath, "-token", "wrong-token-0123456789"}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("trigger with a wrong token = %v", err)
	}
	// The window closes a second after the press and is cut a second
	// later (the default export delay).
	waitOutput(t, out, "window #1 saved")
	s := getStatus(t, addr)
	if len(s.Presses) != 1 || !s.Presses[0].Done || len(s.Presses[0].Files) != 1 || s.Storage.State != "recording" {
		t.Errorf("status after the press: %+v", s)
	}

	// The installer's checks on the service's own parts: a test press is
	// saved and its file listed; the beeper is off in this configuration.
	for _, check := range []string{"press", "sounds"} {
		req, _ := http.NewRequest("POST", "http://"+addr+"/check/"+check, nil)
		req.Header.Set("Authorization", "Bearer "+c.Status.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /check/%s: %s", check, resp.Status)
		}
	}
	var runs map[string]status.CheckRun
	testtool.WaitFor(t, "the press and sounds checks", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/checks.json")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var list []status.CheckRun
		json.NewDecoder(resp.Body).Decode(&list)
		runs = map[string]status.CheckRun{}
		for _, r := range list {
			runs[r.Check] = r
		}
		return !runs["press"].Finished.IsZero() && !runs["sounds"].Finished.IsZero()
	})
	if p := runs["press"]; !p.OK || len(p.Steps) != 2 || !strings.Contains(p.Steps[0].Detail, "window #2 opened") ||
		!strings.Contains(p.Steps[1].Detail, "1 files in ") || !strings.Contains(p.Steps[1].Detail, ".pcap") {
		t.Errorf("press check: %+v", p)
	}
	if strings.Count(out.String(), "window #2 saved") != 1 {
		t.Errorf("the test press's window was not saved once:\n%s", out.String())
	}
	if snd := runs["sounds"]; snd.OK || len(snd.Steps) != 4 || !strings.Contains(snd.Steps[0].Error, "beeper.enable") {
		t.Errorf("sounds check with the beeper off: %+v", snd)
	}
}

// TestStatusServerWiring: the service's status listener knows the capture
// links (for "private") and the configured hostname (for Host).
func TestStatusServerWiring(t *testing.T) {
	c := config.DefaultConfig()
	c.Hostname = "Probe-17"
	c.Links = []config.Link{{Interface: "eth0"}, {Interface: "eth1"}}
	srv := statusServer(c, c.Hostname, nil, t.Logf)
	if !slices.Equal(srv.CaptureIfaces, []string{"eth0", "eth1"}) || !slices.Contains(srv.Hosts.Names, "probe-17") {
		t.Errorf("capture links %q, names %q", srv.CaptureIfaces, srv.Hosts.Names)
	}
}

// freeLoopbackAddr returns a loopback address with a port nothing uses.
func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// pressTrigger runs probe trigger until the service's listener answers and
// returns what it said.
func pressTrigger(t *testing.T, cfgPath string) string {
	t.Helper()
	var tout, terr bytes.Buffer
	deadline := time.Now().Add(20 * time.Second)
	for {
		tout.Reset()
		err := dispatch(context.Background(), env{stdout: &tout, stderr: &terr}, []string{"trigger", "-config", cfgPath})
		if err == nil {
			return tout.String()
		}
		if time.Now().After(deadline) {
			t.Fatalf("trigger: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runConfig is a configuration for `probe run` capturing on iface into a
// temporary /perm, with the status listener on listen.
func runConfig(t testing.TB, iface string, listen ...string) config.Config {
	dir := t.TempDir()
	c := config.DefaultConfig()
	c.Hostname = "clitest"
	c.Links = []config.Link{{Interface: iface}}
	c.Ring.Size = 64 << 20
	c.Ring.ExpectedMbps = 1
	c.Ring.Rules = nil // whole packets, compared with tcpdump's
	c.Trigger.Before = config.Duration(time.Second)
	c.Trigger.After = config.Duration(time.Second)
	c.Trigger.InputDir = filepath.Join(dir, "input")
	c.Storage.Label = "NOSUCHLABEL"
	c.Storage.FirstUSB = false
	c.Storage.DevDir = filepath.Join(dir, "dev")
	c.Storage.MountPoint = filepath.Join(dir, "mnt")
	c.Storage.FallbackPerm = true
	c.Storage.PermDir = filepath.Join(dir, "perm")
	c.Storage.StateDir = filepath.Join(dir, "state")
	c.Storage.Retry = config.Duration(100 * time.Millisecond)
	c.Status.Listen = listen
	c.Status.Token = "token-0123456789abcdef"
	c.Status.PasswordFiles = nil
	c.Leds.Driver = "none"
	c.Beeper.Enable = false
	return c
}

// startRun writes c to a file, runs `probe run` on it until the test ends
// and waits until it records. It returns the file and the service's output.
func startRun(t testing.TB, c config.Config) (string, *syncBuffer) {
	t.Helper()
	return startRunIn(t, c, "")
}

// startRunIn is startRun with the service's system root (env.sysRoot).
func startRunIn(t testing.TB, c config.Config, sysRoot string) (string, *syncBuffer) {
	t.Helper()
	cfgPath := writeConfig(t, c)
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- dispatch(ctx, env{stdout: out, stderr: out, sysRoot: sysRoot}, []string{"run", "-config", cfgPath})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	waitOutput(t, out, "recording on")
	return cfgPath, out
}

// writeConfig writes c to a file of its own and returns its path.
func writeConfig(t testing.TB, c config.Config) string {
	t.Helper()
	b, _ := json.Marshal(c)
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitOutput waits until the service has printed want.
func waitOutput(t testing.TB, out *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("service did not print %q within 20 s:\n%s", want, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTriggerProfile: `probe trigger -profile NAME` presses that
// profile's button through the HTTP endpoint; an unknown name is refused
// (400) and presses nothing.
func TestTriggerProfile(t *testing.T) {
	pair := netnstest.NewPair(t)
	addr := freeLoopbackAddr(t)
	c := runConfig(t, pair.Host, addr)
	c.Trigger.Profiles = []config.Profile{{Name: "phone", Keys: []string{"KEY_PAGEUP"}}, {Name: "internet", Keys: []string{"KEY_PAGEDOWN"}}}
	cfgPath, out := startRun(t, c)
	var tout, terr bytes.Buffer
	if err := dispatch(context.Background(), env{stdout: &tout, stderr: &terr}, []string{"trigger", "-config", cfgPath, "-profile", "internet"}); err != nil ||
		!strings.Contains(tout.String(), "(profile internet): window #1 opened") {
		t.Fatalf("trigger -profile internet: %v, said %q", err, tout.String())
	}
	if err := dispatch(context.Background(), env{stdout: &tout, stderr: &terr}, []string{"trigger", "-config", cfgPath, "-profile", "tv"}); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("trigger -profile tv = %v, want 400", err)
	}
	waitOutput(t, out, "window #1 saved")
	s := getStatus(t, addr)
	if len(s.Presses) != 1 || s.Presses[0].Profile != "internet" || len(s.Presses[0].Files) != 1 || !strings.Contains(s.Presses[0].Files[0], "_internet_") {
		t.Errorf("status after the press: %+v", s.Presses)
	}
}

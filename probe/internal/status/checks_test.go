//go:build !portaudio

package status

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/presscap/presscap/beeper"
	"github.com/presscap/presscap/beeper/alsa/alsatest"
	"github.com/presscap/presscap/beeper/tone"
	"github.com/presscap/presscap/internal/testing/sshdtest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/leds"
	"github.com/presscap/presscap/probe/internal/upload"
)

const checkToken = "check-token-0123456789"

// startCheck posts /check/name as a script would and returns the answer's
// status and run.
func startCheck(t *testing.T, h http.Handler, name string, hdr map[string]string) (int, CheckRun) {
	t.Helper()
	req := httptest.NewRequest("POST", "http://probe.lan/check/"+name, nil)
	req.Header.Set("Authorization", "Bearer "+checkToken)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var run CheckRun
	if rec.Code == http.StatusAccepted {
		if err := json.Unmarshal(rec.Body.Bytes(), &run); err != nil {
			t.Fatalf("POST /check/%s: %v: %s", name, err, rec.Body)
		}
	}
	return rec.Code, run
}

// finished polls GET /checks.json until the check name has finished (in
// a synctest bubble the polls' sleeps move the fake clock on).
func finished(t *testing.T, h http.Handler, name string) CheckRun {
	t.Helper()
	var run CheckRun
	testtool.WaitFor(t, "check "+name, 2*time.Minute, func() bool {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/checks.json", nil))
		var runs []CheckRun
		if err := json.Unmarshal(rec.Body.Bytes(), &runs); err != nil {
			t.Fatalf("checks.json: %v: %s", err, rec.Body)
		}
		for _, r := range runs {
			if r.Check == name && !r.Running && !r.Finished.IsZero() {
				run = r
				return true
			}
		}
		return false
	})
	return run
}

func stepNames(r CheckRun) string {
	var b strings.Builder
	for _, s := range r.Steps {
		ok := "FAIL"
		if s.OK {
			ok = "ok"
		}
		fmt.Fprintf(&b, "%s %s: %s%s\n", ok, s.Name, s.Detail, s.Error)
	}
	return b.String()
}

// soundCard is a /proc tree with one USB card and the fake ALSA device
// behind it, as the beeper's ALSA test builds it.
func soundCard(t *testing.T) (*beeper.Beeper, *alsatest.Device) {
	proc := t.TempDir()
	os.MkdirAll(filepath.Join(proc, "asound", "card1", "pcm0p"), 0o755)
	os.WriteFile(filepath.Join(proc, "asound", "cards"), []byte(" 1 [Device         ]: USB-Audio - USB Audio Device\n                      C-Media USB Audio Device at usb-1.3, full speed\n"), 0o644)
	dev := &alsatest.Device{Rates: []uint32{48000}, Channels: []uint32{2}, Path: "/dev/snd/pcmC1D0p"}
	cfg := beeper.DefaultConfig()
	return beeper.NewWithOutput(cfg, nil, beeper.NewALSAOutput(cfg, proc, "/dev", dev)), dev
}

// timeline is an LED that writes a sysfs tree (the leds tests' fake LED)
// and records how long each level lasted, merged, as "1:300 0:300 ...".
type timeline struct {
	leds.Light
	mu    sync.Mutex
	on    bool
	since time.Time
	spans []string
}

func (l *timeline) Set(on bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if on != l.on {
		if !l.since.IsZero() {
			v := 0
			if l.on {
				v = 1
			}
			l.spans = append(l.spans, fmt.Sprintf("%d:%d", v, now.Sub(l.since).Milliseconds()))
		}
		l.on, l.since = on, now
	}
	return l.Light.Set(on)
}

func (l *timeline) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.spans, " ") + " "
}

func sysfsLED(t *testing.T) (root string, light leds.Light) {
	root = t.TempDir()
	dir := filepath.Join(root, "ACT")
	os.MkdirAll(dir, 0o755)
	for f, v := range map[string]string{"brightness": "0", "max_brightness": "1", "trigger": "none [mmc0] timer"} {
		os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644)
	}
	s, err := leds.OpenSysfs(root, "ACT", false)
	if err != nil {
		t.Fatal(err)
	}
	return dir, s
}

// TestCheckSoundsOnFakeCard plays each sound through the status page's
// check onto the fake ALSA device (in a synctest bubble, so the pauses
// between sounds take no time), then with the card pulled.
func TestCheckSoundsOnFakeCard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, dev := soundCard(t)
		defer b.Close()
		h := Handler(WithChecks(&fakeSource{}, &Checks{Beeper: b}), Auth{Token: checkToken})
		if code, run := startCheck(t, h, "sounds", nil); code != http.StatusAccepted || !run.Running {
			t.Fatalf("POST /check/sounds: %d %+v", code, run)
		}
		run := finished(t, h, "sounds")
		want := "ok play ack: played\nok play saved: played\nok play uploaded: played\nok play fault: played\n"
		if got := stepNames(run); got != want || !run.OK {
			t.Errorf("sounds check (ok %v):\n%s\nwant:\n%s", run.OK, got, want)
		}
		frames := 0
		for _, s := range beeper.Sounds() {
			frames += tone.Frames(s.Segments(), 48000)
		}
		if opens, _ := dev.OpenCount(); opens != 4 || len(dev.Samples()) != 2*frames {
			t.Errorf("device opened %d times, got %d samples; want 4 and %d", opens, len(dev.Samples()), 2*frames)
		}

		dev.SetGone(true)
		startCheck(t, h, "sounds", nil)
		run = finished(t, h, "sounds")
		if run.OK || len(run.Steps) != 4 || !strings.Contains(run.Steps[0].Error, "no such file") && !strings.Contains(run.Steps[0].Error, "no USB sound card") {
			t.Errorf("sounds check with the card gone:\n%s", stepNames(run))
		}
	})
}

// TestCheckLEDsOnSysfs shows every LED state through the status page's
// check on a sysfs LED, in a synctest bubble: each state's pattern appears
// after a dark pause, and the LED goes back to the service's state.
func TestCheckLEDsOnSysfs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, sys := sysfsLED(t)
		light := &timeline{Light: sys}
		l := leds.NewWithLight(light)
		defer l.Close()
		l.Set(leds.Recording)
		h := Handler(WithChecks(&fakeSource{}, &Checks{LEDs: l}), Auth{Token: checkToken})
		startCheck(t, h, "leds", nil)
		run := finished(t, h, "leds")
		if !run.OK || len(run.Steps) != len(leds.States())-1 {
			t.Fatalf("leds check (ok %v):\n%s", run.OK, stepNames(run))
		}
		for i, s := range leds.States()[1:] {
			if st := run.Steps[i]; st.Name != "show "+s.String() || st.Detail != leds.PatternOf(s).Say {
				t.Errorf("step %d: %+v, want show %v: %s", i, st, s, leds.PatternOf(s).Say)
			}
		}
		time.Sleep(2 * time.Second) // the last dark flash ends
		tl := light.String()
		pats := map[string]string{
			// Whole rounds, three seconds or more.
			"booting":   `^(1:500 0:500 ){3}1:0 0:1000 `, // first, after the steady on
			"recording": `0:1000 1:3000 0:1000 `,
			"pressed":   `0:1000 (1:50 0:50 ){30}1:0 0:1000 `,
			"saving":    `0:1000 (1:125 0:125 ){12}1:0 0:1000 `,
			"uploading": `0:1000 1:1800 0:200 1:1800 0:200 1:0 0:1000 `,
		}
		for n := 2; n <= 5; n++ {
			// After the dark pause, n blinks, then the long gap.
			round := strings.Repeat(`1:300 0:300 `, n-1) + `1:300 0:2000 `
			if n == 2 {
				round += round // 2.6 s, shown twice
			}
			pats[fmt.Sprintf("%d blinks", n)] = `0:1000 ` + round + `1:0 0:1000 `
		}
		for name, re := range pats {
			if !regexp.MustCompile(re).MatchString(tl) {
				t.Errorf("LED timeline lacks %s (%s):\n%s", name, re, tl)
			}
		}
		if !light.on {
			t.Errorf("LED off after the check, want the service's state (recording, steady on)")
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "brightness")); string(b) != "1" {
			t.Errorf("sysfs brightness %q after the check, want 1", b)
		}
	})
}

// TestCheckUploadAgainstSSHD runs the upload check through the status page
// against a real sshd on loopback: refused before the key is installed,
// every step of `probe upload -test` after, nothing left on the server.
func TestCheckUploadAgainstSSHD(t *testing.T) {
	srv := sshdtest.Start(t, sshdtest.Options{})
	remote := filepath.Join(srv.Dir, "in")
	os.Mkdir(remote, 0o755)
	cfg := upload.DefaultConfig()
	cfg.Enabled = true
	cfg.Server, cfg.User, cfg.RemoteDir, cfg.HostKey = srv.Addr(), "root", remote, srv.Fingerprint()
	h := Handler(WithChecks(&fakeSource{}, &Checks{Upload: cfg, StateDir: t.TempDir()}), Auth{Token: checkToken})

	// Without credentials, or from another site's page, nothing starts.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/check/upload", nil))
	if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("POST without credentials: %d", rec.Code)
	}
	if code, _ := startCheck(t, h, "upload", map[string]string{"Origin": "http://evil.example"}); code != http.StatusForbidden {
		t.Errorf("POST from another origin: %d, want 403", code)
	}
	if code, _ := startCheck(t, h, "nosuch", nil); code != http.StatusNotFound {
		t.Errorf("POST /check/nosuch: %d", code)
	}

	code, run := startCheck(t, h, "upload", map[string]string{"Origin": "http://probe.lan"})
	if code != http.StatusAccepted || !run.Running {
		t.Fatalf("POST /check/upload: %d %+v", code, run)
	}
	run = finished(t, h, "upload")
	if run.OK || !strings.Contains(stepNames(run), "FAIL check host key and log in as root") {
		t.Fatalf("upload check before the key is installed:\n%s", stepNames(run))
	}
	srv.AuthorizeLine(run.Steps[0].Detail) // the "load SSH key" step shows the key

	// The page's button: a form post, answered with the way back to the page.
	req := httptest.NewRequest("POST", "http://probe.lan/check/upload", strings.NewReader(""))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+checkToken)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/#check-upload" {
		t.Fatalf("form post: %d, Location %q", rec.Code, rec.Header().Get("Location"))
	}
	run = finished(t, h, "upload")
	got := stepNames(run)
	for _, want := range []string{"ok load SSH key: ssh-ed25519 ", "ok connect to " + srv.Addr(), srv.Fingerprint() + " matches", "ok find remote_dir", "ok write ", "ok read back", "ok delete"} {
		if !strings.Contains(got, want) {
			t.Errorf("upload check lacks %q:\n%s", want, got)
		}
	}
	if !run.OK || strings.Contains(got, "FAIL") {
		t.Errorf("upload check failed:\n%s", got)
	}
	if entries, _ := os.ReadDir(remote); len(entries) != 0 {
		t.Errorf("the check left %d files on the server", len(entries))
	}

	off := Handler(WithChecks(&fakeSource{}, &Checks{Upload: upload.DefaultConfig()}), Auth{Token: checkToken})
	startCheck(t, off, "upload", nil)
	if run := finished(t, off, "upload"); run.OK || !strings.Contains(stepNames(run), "upload.enable is false") {
		t.Errorf("upload check with upload off:\n%s", stepNames(run))
	}
}

// TestCheckUploadEnrols: the page's upload check on a probe whose own key
// the server refuses, with an enrolment account in the configuration,
// writes the key to fleet/enroll/<id>.pub with that account and names the
// key's fingerprint for the installer to read to the provider.
func TestCheckUploadEnrols(t *testing.T) {
	srv := sshdtest.Start(t, sshdtest.Options{})
	remote := filepath.Join(srv.Dir, "in")
	os.Mkdir(remote, 0o755)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "enrolment")
	if err != nil {
		t.Fatal(err)
	}
	enrollKey := filepath.Join(t.TempDir(), "enroll_ed25519")
	if err := os.WriteFile(enrollKey, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(priv)
	srv.Authorize(signer.PublicKey()) // the enrolment key only, not the probe's
	cfg := upload.DefaultConfig()
	cfg.Enabled = true
	cfg.Server, cfg.User, cfg.RemoteDir, cfg.HostKey = srv.Addr(), "root", remote, srv.Fingerprint()
	cfg.EnrollUser, cfg.EnrollKeyFile = "root", enrollKey
	const id = "10000000a1b2c3d4"
	h := Handler(WithChecks(&fakeSource{}, &Checks{Upload: cfg, StateDir: t.TempDir(), ID: id}), Auth{Token: checkToken})

	startCheck(t, h, "upload", nil)
	run := finished(t, h, "upload")
	got := stepNames(run)
	for _, want := range []string{"FAIL check host key and log in as root",
		"ok enrol: write the public key to " + remote + "/fleet/enroll/" + id + ".pub as root: written; ask the provider to accept key SHA256:"} {
		if !strings.Contains(got, want) {
			t.Errorf("upload check lacks %q:\n%s", want, got)
		}
	}
	if run.OK {
		t.Errorf("the check passed without the probe's key on the server:\n%s", got)
	}
	if b, err := os.ReadFile(filepath.Join(remote, "fleet", "enroll", id+".pub")); err != nil || string(b) != run.Steps[0].Detail+"\n" {
		t.Errorf("pending key %q (%v), want the probe's %q", b, err, run.Steps[0].Detail)
	}
}

// pressSource saves a press's window after a few looks, as the service
// does after the window's end.
type pressSource struct {
	fakeSource
	mu    sync.Mutex
	press Press
	looks int
	fail  error
}

func (p *pressSource) Trigger(source, _ string) (Press, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return Press{}, p.fail
	}
	p.press = Press{Time: time.Now(), Source: source, Decision: "opened", Window: 4, Dir: "/mnt/presscap/captures"}
	p.looks = 0
	return p.press, nil
}

func (p *pressSource) Snapshot() Snapshot {
	s := p.fakeSource.Snapshot()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.looks++
	q := p.press
	if p.looks > 3 {
		q.Done, q.Files = true, []string{"20231114T221320Z_4_all.pcap", "20231114T221320Z_4_voip.pcap"}
	}
	s.Presses = append(s.Presses, Press{Time: q.Time.Add(-time.Second), Window: 4, Done: true, Files: []string{"older.pcap"}}, q)
	return s
}

// TestCheckPress presses through the page and waits for the window's
// files; the service's refusal is the check's failure.
func TestCheckPress(t *testing.T) {
	src := &pressSource{}
	h := Handler(WithChecks(src, &Checks{Poll: time.Millisecond}), Auth{Token: checkToken})
	startCheck(t, h, "press", nil)
	run := finished(t, h, "press")
	got := stepNames(run)
	if !run.OK || !strings.Contains(got, "ok press: at ") || !strings.Contains(got, "window #4 opened") ||
		!strings.Contains(got, "ok save window #4: 2 files in /mnt/presscap/captures: 20231114T221320Z_4_all.pcap, 20231114T221320Z_4_voip.pcap") ||
		strings.Contains(got, "older.pcap") {
		t.Errorf("press check:\n%s", got)
	}
	if src.press.Source != "installer" {
		t.Errorf("pressed as %q, want installer", src.press.Source)
	}
	src.fail = fmt.Errorf("no disk: nothing to save to")
	startCheck(t, h, "press", nil)
	if run := finished(t, h, "press"); run.OK || !strings.Contains(stepNames(run), "FAIL press: no disk") {
		t.Errorf("press check with the service refusing:\n%s", stepNames(run))
	}
}

// TestChecksOnPageAndJSON: without checks the page has no check section;
// with them, the page has one button per check and status.json the runs.
func TestChecksOnPageAndJSON(t *testing.T) {
	get := func(h http.Handler, path string) string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Body.String()
	}
	if body := get(Handler(&fakeSource{}, Auth{}), "/"); strings.Contains(body, "Installer checks") {
		t.Error("page without checks shows the check section")
	}
	h := Handler(WithChecks(&fakeSource{}, &Checks{}), Auth{})
	body := get(h, "/")
	for _, ch := range checkList {
		if !strings.Contains(body, `action="check/`+ch.name+`"`) || !strings.Contains(body, ch.title) {
			t.Errorf("page lacks the button %q", ch.title)
		}
	}
	var snap Snapshot
	if err := json.Unmarshal([]byte(get(h, "/status.json")), &snap); err != nil || len(snap.Checks) != len(checkList) {
		t.Errorf("status.json checks: %v %+v", err, snap.Checks)
	}
}

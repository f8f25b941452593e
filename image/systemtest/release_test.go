//go:build systemtest

package systemtest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/release"
	"github.com/presscap/presscap/internal/testing/testtool"
)

// Fleet releases in the VM (issue 14): the probe pulls signed bundles
// from the e2e test's sshd, installs them through its own gokrazy with a
// test boot and confirms them, refuses a bad signature, and a build that
// does not record rolls back by itself. These steps run inside
// TestCaptureEndToEnd, on its boot and its recording probe.

// releaseConfirmWithin leaves a TCG boot (kernel to recording and the
// server's answer, about a minute) room.
const releaseConfirmWithin, releaseConfirmWithinGo = "2m", "2m0s"

// enableReleases makes a signing key and gives the instance's probe its
// public key, the channel read every minute, at any time of day, with no
// pause after a press.
func enableReleases(t *testing.T, dir, inst string) string {
	t.Helper()
	priv, pub, err := release.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "release.key")
	if err := os.WriteFile(key, []byte(priv), 0o600); err != nil {
		t.Fatal(err)
	}
	editProbeConfig(t, inst, func(c map[string]any) {
		c["release"] = map[string]any{"public_keys": []string{pub}, "check_interval": "1m",
			"quiet_after_press": "0s", "window": "00:00-00:00", "confirm_within": releaseConfirmWithin}
	})
	return key
}

func editProbeConfig(t testing.TB, inst string, edit func(map[string]any)) {
	t.Helper()
	editJSON(t, filepath.Join(inst, "probe.json"), "  ", edit)
}

// editJSON rewrites the JSON object in file p as edit changes it.
func editJSON(t testing.TB, p, indent string, edit func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	edit(c)
	b, _ = json.MarshalIndent(c, "", indent)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// sshdForward reaches the SFTP server from the guest at 10.0.2.100:22.
// A guestfwd to a tcp: chardev is one host connection made at QEMU's
// start that every guest connection shares, so two at once (the health
// report, the upload, the release check) corrupt each other's SSH stream
// and end it for good; cmd: spawns one socat per guest connection.
func (e *e2e) sshdForward() string {
	return fmt.Sprintf("guestfwd=tcp:10.0.2.100:22-cmd:%s STDIO TCP:127.0.0.1:%d", e.socat, e.srv.Port)
}

// makeBundle runs make release's command on an image.
func makeBundle(t *testing.T, tool, inst, img, out, key, previous string) {
	t.Helper()
	args := []string{"release", "-instance", inst, "-image", img, "-o", out, "-key", key}
	if previous != "" {
		args = append(args, "-previous", previous)
	} else {
		args = append(args, "-approve-boot-change") // the first bundle
	}
	cmd := exec.Command(tool, args...)
	cmd.Dir = repo
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("image release %s: %v\n%s", img, err, o)
	}
}

// tampering is what publish spoils in a bundle.
type tampering int

const (
	intact tampering = iota
	// badSignature: the manifest signed by a key the probe does not trust.
	badSignature
	// corruptRoot: the root squashfs with one byte flipped under a validly
	// signed manifest (a bad disk or transfer on the provider's side).
	corruptRoot
)

// publish copies a bundle into the channel as a provider uploads it: the
// parts first, the manifest and its signature last, spoiled as tamper says.
func (e *e2e) publish(t *testing.T, bundle string, tamper tampering) {
	t.Helper()
	ch := filepath.Join(e.remote, "fleet", "release", "stable")
	os.RemoveAll(ch)
	if err := os.MkdirAll(ch, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(bundle)
	if err != nil {
		t.Fatal(err)
	}
	var last []string
	for _, en := range ents {
		if en.Name() == release.ManifestFile || en.Name() == release.SignatureFile {
			last = append(last, en.Name())
			continue
		}
		copyFile(t, filepath.Join(bundle, en.Name()), filepath.Join(ch, en.Name()))
	}
	if tamper == corruptRoot {
		root := filepath.Join(ch, "root.squashfs")
		b, err := os.ReadFile(root)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x40
		if err := os.WriteFile(root, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range last {
		copyFile(t, filepath.Join(bundle, n), filepath.Join(ch, n))
	}
	if tamper == badSignature {
		mb, err := os.ReadFile(filepath.Join(ch, release.ManifestFile))
		if err != nil {
			t.Fatal(err)
		}
		_, other, _ := ed25519.GenerateKey(rand.Reader)
		sig := base64.StdEncoding.EncodeToString(ed25519.Sign(other, mb)) + "\n"
		if err := os.WriteFile(filepath.Join(ch, release.SignatureFile), []byte(sig), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// probeLog is the probe service's recent stdout as gokrazy keeps it (its
// last 100 lines): /log streams them, then follows, so the read stops
// after a few seconds. "" while the web UI does not answer.
func probeLog(v *vm, pw string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", v.webURL("/log?path=/user/probe&stream=stdout"), nil)
	req.SetBasicAuth("gokrazy", pw)
	c := *v.web
	c.Timeout = 0 // the context ends the stream
	resp, err := c.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var b strings.Builder
	io.Copy(&b, io.LimitReader(resp.Body, 1<<20))
	return b.String()
}

// waitLog polls the probe's log until it holds every one of want.
func waitLog(t *testing.T, v *vm, pw string, timeout time.Duration, want ...string) {
	t.Helper()
	start := time.Now()
	seen := map[string]bool{}
	var last string
	for time.Since(start) < timeout {
		if l := probeLog(v, pw); l != "" {
			last = l
			for _, w := range want {
				if strings.Contains(l, w) {
					seen[w] = true
				}
			}
			if len(seen) == len(want) {
				return
			}
		}
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("the probe's log did not show %q within %s (seen %v)\nlog:\n%s\nserial:\n%s", want, timeout, seen, tail(last, 6000), tail(v.serialLog(t), 3000))
}

// exitFlag is a flag probe run does not know: the build given it in its
// command line has a probe that exits at every start.
const exitFlag = "-presscap-systemtest-exits"

// buildBadInstance copies inst (with its certificate and password, so the
// VM's web UI stays the same) with a probe that exits at start: the image
// tool accepts the flag, probe run refuses it (exit status 2) and gokrazy
// restarts it every second, so its guard must give up.
func buildBadInstance(t *testing.T, dir, inst string) string {
	t.Helper()
	bad := filepath.Join(dir, "bad", filepath.Base(inst))
	if err := os.MkdirAll(filepath.Dir(bad), 0o755); err != nil {
		t.Fatal(err)
	}
	if o, err := exec.Command("cp", "-a", inst, bad).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, o)
	}
	editJSON(t, filepath.Join(bad, "config.json"), "    ", func(gc map[string]any) {
		pc := gc["PackageConfig"].(map[string]any)["github.com/presscap/presscap/probe"].(map[string]any)
		pc["CommandLineFlags"] = []string{"run", exitFlag}
	})
	return bad
}

// pressHeld presses the presenter stand-in every 2 s until the returned
// func is called: with repeat "extend" one window stays open meanwhile.
// The func returns when the last press is done.
func pressHeld(t *testing.T, v *vm) func() {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			if err := monitorCmd(v.monitor, "sendkey pgdn"); err != nil {
				t.Error(err)
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(1500 * time.Millisecond):
			}
		}
	}()
	return func() { close(stop); <-done }
}

// newCaptures waits for a press's files on the SFTP server that are not
// among old: its manifest and at least two captures under final names.
func (e *e2e) newCaptures(t *testing.T, old map[string]bool, timeout time.Duration) []string {
	t.Helper()
	var files []string
	for start := time.Now(); time.Since(start) < timeout; time.Sleep(time.Second) {
		files = files[:0]
		manifests, _ := filepath.Glob(filepath.Join(e.remote, "*_manifest.json"))
		newManifest := false
		for _, m := range manifests {
			newManifest = newManifest || !old[m]
		}
		for _, f := range uploadedCaptures(e.remote) {
			if !old[f] {
				files = append(files, f)
			}
		}
		if newManifest && len(files) >= 2 {
			return files
		}
	}
	t.Fatalf("no new press's files on the SFTP server within %v (new captures %v)\nsshd: %s", timeout, files, tail(e.srv.Log(), 2000))
	return nil
}

// updateReport is the update section of the VM's health report.
type updateReport struct {
	Versions struct {
		Image string `json:"image"`
	} `json:"versions"`
	Update *struct {
		Failed []struct {
			Version string `json:"version"`
			Reason  string `json:"reason"`
		} `json:"failed"`
	} `json:"update"`
}

// waitReportedFailure waits for a health report from build running that
// lists build failed as failed, its reason holding want.
func (e *e2e) waitReportedFailure(t *testing.T, running, failed, want string, timeout time.Duration) {
	t.Helper()
	var last []byte
	for start := time.Now(); time.Since(start) < timeout; time.Sleep(2 * time.Second) {
		found, _ := filepath.Glob(filepath.Join(e.remote, "fleet", "status", "*.json"))
		for _, f := range found {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			last = b
			var r updateReport
			if json.Unmarshal(b, &r) != nil || r.Versions.Image != running || r.Update == nil {
				continue
			}
			for _, fl := range r.Update.Failed {
				if fl.Version == failed && strings.Contains(fl.Reason, want) {
					t.Logf("the health report of build %s: build %s failed: %s", running, failed, fl.Reason)
					return
				}
			}
		}
	}
	t.Fatalf("no health report of build %s listing build %s failed (%q) within %v; last:\n%s", running, failed, want, timeout, last)
}

// checkPulledUpdates runs on a VM whose probe records build running
// (image runningImg): a bundle with a bad signature and one with a
// corrupted root are refused; build C, offered while a press window is
// held open, waits until the window is saved, then is pulled, installed
// and test-booted, and confirms itself; build E, whose probe exits at
// start, is installed, fails its guard and the VM comes back on C by
// itself (so C's confirmation was permanent), which reports the failure
// and does not install E again.
func (e *e2e) checkPulledUpdates(t *testing.T, v *vm, tool, inst, workdir, dir, key, pw, runningImg string, tsC, tsE time.Time) {
	t.Helper()
	start := time.Now()
	bundles := filepath.Join(dir, "bundles")
	imgC, imgE := filepath.Join(dir, "c.img"), filepath.Join(dir, "e.img")
	buildImage(t, tool, inst, imgC, workdir, tsC)
	buildImage(t, tool, buildBadInstance(t, dir, inst), imgE, workdir, tsE)
	prev := filepath.Join(bundles, "running")
	makeBundle(t, tool, inst, runningImg, prev, key, "")
	makeBundle(t, tool, inst, imgC, filepath.Join(bundles, "c"), key, prev)
	makeBundle(t, tool, inst, imgE, filepath.Join(bundles, "e"), key, prev)
	t.Logf("bench: two builds and three bundles %.1f s", time.Since(start).Seconds())
	c, ebuild := tsC.Format(time.RFC3339), tsE.Format(time.RFC3339)

	// A signature by a key the image does not list: refused, reported,
	// nothing downloaded. Then a validly signed manifest whose root has
	// a flipped byte: downloaded, refused, never installed.
	step := time.Now()
	e.publish(t, filepath.Join(bundles, "c"), badSignature)
	waitLog(t, v, pw, 3*time.Minute, "on channel stable refused: ", "manifest signature made by none of the trusted keys")
	t.Logf("bench: bad signature refused %.1f s", time.Since(step).Seconds())
	step = time.Now()
	e.publish(t, filepath.Join(bundles, "c"), corruptRoot)
	waitLog(t, v, pw, 3*time.Minute, "update: release "+c+" on channel stable refused: part does not match the manifest: part root (root.squashfs) hashes to ")
	t.Logf("bench: corrupted root refused %.1f s", time.Since(step).Seconds())

	// Signed and whole, offered while presses hold a window open: the
	// reboot waits for the window's save (its files reach the server
	// while the old build still runs), then C is installed, rebooted
	// into and confirms itself.
	st, err := v.target(pw).GetStatus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	running := st.BuildTimestamp
	old := map[string]bool{}
	prevFiles, _ := filepath.Glob(filepath.Join(e.remote, "*"))
	for _, f := range prevFiles {
		old[f] = true
	}
	step = time.Now()
	letGo := pressHeld(t, v)
	e.publish(t, filepath.Join(bundles, "c"), intact)
	waitLog(t, v, pw, 3*time.Minute, "update: reboot waits: a window is open or being saved")
	letGo()
	t.Logf("bench: release published to the reboot waiting for the open window %.1f s", time.Since(step).Seconds())
	files := e.newCaptures(t, old, 2*time.Minute)
	st, err = v.target(pw).GetStatus(t.Context())
	if err != nil || st.BuildTimestamp != running {
		t.Fatalf("when the held window's files reached the server, the VM runs %q (%v), want still %s: it did not wait for the save", st.BuildTimestamp, err, running)
	}
	capinfos := testtool.Path(t, "capinfos", "wireshark-common")
	for _, f := range files {
		if out, err := exec.Command(capinfos, f).CombinedOutput(); err != nil {
			t.Errorf("capinfos %s: %v\n%s", f, err, out)
		}
	}
	t.Logf("bench: the held window's files on the server, build %s still running %.1f s", running, time.Since(step).Seconds())
	v.waitUp(t, pw, c, 6*time.Minute)
	t.Logf("bench: release published to build C answering %.1f s", time.Since(step).Seconds())
	waitLog(t, v, pw, 3*time.Minute, "update: build "+c+" confirmed")
	t.Logf("bench: release published to build C confirmed %.1f s", time.Since(step).Seconds())

	// A build whose probe exits at start: installed, tried once, rolled
	// back; C reports it failed, naming why, and refuses it.
	step = time.Now()
	e.publish(t, filepath.Join(bundles, "e"), intact)
	v.waitUp(t, pw, ebuild, 6*time.Minute)
	t.Logf("bench: release published to build E answering %.1f s", time.Since(step).Seconds())
	v.waitUp(t, pw, c, 8*time.Minute)
	t.Logf("bench: build E up to build C again %.1f s", time.Since(step).Seconds())
	waitLog(t, v, pw, 3*time.Minute, "release "+ebuild+" on channel stable refused: failed here before (not healthy within "+releaseConfirmWithinGo+" of its boot: its probe restarted after the deadline")
	// The clock is not synced in the VM, so the boot report waits 10
	// minutes; the report after a press's upload comes at once.
	step = time.Now()
	monitor(t, v.monitor, "sendkey pgdn")
	e.waitReportedFailure(t, c, ebuild, "flag provided but not defined: "+exitFlag, 3*time.Minute)
	t.Logf("bench: a press to the health report listing build E failed %.1f s", time.Since(step).Seconds())

	// Coming back on C, not on the build before it, shows that C's
	// confirmation made its root the one cmdline.txt names.
	t.Logf("bench: pulled updates in all %.1f s", time.Since(start).Seconds())
}

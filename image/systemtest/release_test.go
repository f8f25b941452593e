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
	p := filepath.Join(inst, "probe.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	edit(c)
	b, _ = json.MarshalIndent(c, "", "  ")
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

// publish copies a bundle into the channel as a provider uploads it: the
// parts first, the manifest and its signature last. badSig replaces the
// signature with one by a key the probe does not trust.
func (e *e2e) publish(t *testing.T, bundle string, badSig bool) {
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
	for _, n := range last {
		copyFile(t, filepath.Join(bundle, n), filepath.Join(ch, n))
	}
	if badSig {
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

// buildBadInstance copies inst (with its certificate and password, so the
// VM's web UI stays the same) with a probe that captures an interface the
// VM lacks: it never records, so its guard must give up.
func buildBadInstance(t *testing.T, dir, inst string) string {
	t.Helper()
	bad := filepath.Join(dir, "bad", filepath.Base(inst))
	if err := os.MkdirAll(filepath.Dir(bad), 0o755); err != nil {
		t.Fatal(err)
	}
	if o, err := exec.Command("cp", "-a", inst, bad).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, o)
	}
	editProbeConfig(t, bad, func(c map[string]any) {
		c["links"] = []map[string]string{{"interface": "eth7", "name": "capture"}}
	})
	return bad
}

// checkPulledUpdates runs on a VM whose probe records build running
// (image runningImg): a bundle with a bad signature is refused; build C,
// pulled, installed and test-booted, confirms itself; build E, whose probe
// cannot record, is installed, fails its guard and the VM comes back on C
// by itself (so C's confirmation was
// permanent), and C does not install E again.
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

	// A signature by a key the image does not list: refused, reported.
	e.publish(t, filepath.Join(bundles, "c"), true)
	waitLog(t, v, pw, 3*time.Minute, "on channel stable refused: ", "manifest signature made by none of the trusted keys")

	// Signed: pulled, installed for a test boot, rebooted into, confirmed.
	step := time.Now()
	e.publish(t, filepath.Join(bundles, "c"), false)
	c := tsC.Format(time.RFC3339)
	v.waitUp(t, pw, c, 6*time.Minute)
	t.Logf("bench: release published to build C answering %.1f s", time.Since(step).Seconds())
	waitLog(t, v, pw, 3*time.Minute, "update: build "+c+" confirmed")
	t.Logf("bench: release published to build C confirmed %.1f s", time.Since(step).Seconds())

	// A build that cannot record: installed, tried once, rolled back.
	step = time.Now()
	e.publish(t, filepath.Join(bundles, "e"), false)
	ebuild := tsE.Format(time.RFC3339)
	v.waitUp(t, pw, ebuild, 6*time.Minute)
	t.Logf("bench: release published to build E answering %.1f s", time.Since(step).Seconds())
	v.waitUp(t, pw, c, 8*time.Minute)
	t.Logf("bench: build E up to build C again %.1f s", time.Since(step).Seconds())
	waitLog(t, v, pw, 3*time.Minute, "release "+ebuild+" on channel stable refused: failed here before (not healthy within "+releaseConfirmWithinGo)

	// Coming back on C, not on the build before it, shows that C's
	// confirmation made its root the one cmdline.txt names.
	t.Logf("bench: pulled updates in all %.1f s", time.Since(start).Seconds())
}

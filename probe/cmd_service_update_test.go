package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presscap/presscap/probe/internal/fleet/update"
)

// TestLocalDevice: the probe reaches its own gokrazy over HTTPS pinned to
// the image's certificate, with the first password gokrazy accepts (a
// per-device password made in this boot is not in force yet); another
// certificate is refused before any password is sent.
func TestLocalDevice(t *testing.T) {
	var sent []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pw, _ := r.BasicAuth()
		sent = append(sent, pw)
		if pw != "image-pw" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "partuuid,updatehash,gpt,")
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	root := t.TempDir()
	write := func(p, s string) {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/ssl/gokrazy-web.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	write("etc/https-port.txt", port+"\n")
	write("perm/gokr-pw.txt", "made-this-boot\n")
	write("etc/gokr-pw.txt", "image-pw\n")
	pw := rooted(root, []string{"/perm/gokr-pw.txt", "/etc/gokr-pw.txt"})

	dev, err := localDevice(context.Background(), root, pw)
	if err != nil {
		t.Fatal(err)
	}
	if dev.Password != "image-pw" || !strings.HasPrefix(dev.BaseURL, "https://127.0.0.1:"+port) {
		t.Errorf("device %s with password %q, want the image's password over HTTPS", dev.BaseURL, dev.Password)
	}

	// httptest's servers share one certificate: make another.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	write("etc/ssl/gokrazy-web.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	sent = nil
	if _, err := localDevice(context.Background(), root, pw); err == nil || !strings.Contains(err.Error(), "not the image's") {
		t.Errorf("a device with another certificate: %v", err)
	}
	if len(sent) != 0 {
		t.Errorf("passwords sent to a device with another certificate: %q", sent)
	}
}

// TestWaitLocalDevice: gokrazy's HTTP failing at boot does not stop the
// release channel for good (a build on trial would miss "server reached"
// and fail): the endpoint is asked again until it answers.
func TestWaitLocalDevice(t *testing.T) {
	var asked atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if asked.Add(1) <= 3 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "partuuid,updatehash,gpt,")
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	root := t.TempDir()
	for p, s := range map[string]string{
		"etc/ssl/gokrazy-web.pem": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})),
		"etc/https-port.txt":      port + "\n",
		"etc/gokr-pw.txt":         "image-pw\n",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pw := rooted(root, []string{"/etc/gokr-pw.txt"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, err := waitLocalDevice(ctx, root, pw, time.Millisecond, t.Logf)
	if err != nil || dev == nil {
		t.Fatalf("waitLocalDevice = %v, %v after %d requests", dev, err, asked.Load())
	}
	if n := asked.Load(); n != 4 {
		t.Errorf("%d requests, want 4 (3 failed, then the answer)", n)
	}
	cancel()
	asked.Store(-1000)
	if _, err := waitLocalDevice(ctx, root, pw, time.Millisecond, t.Logf); err == nil {
		t.Error("an ended context still waits for an answer")
	}
}

// TestRunJudgesTrialBeforeFlags: a build on trial whose probe exits at
// start (here a flag it does not know) is still judged: before its
// deadline the start is recorded with why it stopped; the first start
// past the deadline records the failure, naming that cause, and reboots
// through gokrazy before probe run returns. gokrazy answers its reboot
// only once the services stopped: the request ends with the SIGTERM.
func TestRunJudgesTrialBeforeFlags(t *testing.T) {
	var reboots atomic.Int32
	rebootAsked := make(chan struct{}, 1)
	released := make(chan bool, 1) // the reboot request ended by the client
	gok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pw, _ := r.BasicAuth(); pw != "image-pw" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/update/features":
			io.WriteString(w, "partuuid,updatehash,gpt,")
		case "/reboot":
			reboots.Add(1)
			rebootAsked <- struct{}{}
			select {
			case <-r.Context().Done():
				released <- true
			case <-time.After(20 * time.Second):
				released <- false
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer gok.Close()
	_, port, _ := net.SplitHostPort(gok.Listener.Addr().String())
	root := t.TempDir()
	write := func(p, s string) {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/gokr-pw.txt", "image-pw\n")
	write("etc/http-port.txt", port+"\n")
	const old, running = "2026-12-01T00:00:00Z", "2026-12-06T22:00:00Z"
	t.Setenv("PRESSCAP_IMAGE_BUILD", running)
	store := update.Store{Dir: updateDir(root)}
	if err := store.Save(update.Record{Trial: &update.Trial{Version: running, From: old, InstallBoot: "boot-1",
		ConfirmWithin: time.Minute, Need: update.Health{Recording: true}}}); err != nil {
		t.Fatal(err)
	}

	run := func(uptime string) error {
		write("proc/uptime", uptime+" 1.00\n")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel() // ends the guard still watching a start before the deadline
		go func() {
			select {
			case <-rebootAsked: // gokrazy's SIGTERM
				cancel()
			case <-ctx.Done():
			}
		}()
		var out syncBuffer
		err := dispatch(ctx, env{stdout: &out, stderr: &out, sysRoot: root}, []string{"run", "-no-such-flag"})
		t.Logf("probe run at uptime %s: %v\n%s", uptime, err, out.String())
		return err
	}
	if err := run("10.0"); err == nil || !strings.Contains(err.Error(), "-no-such-flag") {
		t.Fatalf("probe run -no-such-flag: %v, want the flag named", err)
	}
	rec, err := store.Load()
	if err != nil || rec.Trial == nil || !rec.Trial.Started || !strings.Contains(rec.Trial.Stopped, "-no-such-flag") || reboots.Load() != 0 {
		t.Fatalf("before the deadline: record %+v %v, %d reboots; want the trial started, its stop recorded, no reboot", rec.Trial, err, reboots.Load())
	}

	run("61.0")
	rec, err = store.Load()
	if err != nil || rec.Trial != nil || len(rec.Failed) != 1 || rec.Failed[0].Version != running ||
		!strings.Contains(rec.Failed[0].Reason, "-no-such-flag") {
		t.Fatalf("past the deadline: record %+v %v; want the build failed, the flag named", rec, err)
	}
	if n := reboots.Load(); n != 1 {
		t.Errorf("%d reboots through gokrazy, want 1 before probe run returned", n)
	}
	if !<-released {
		t.Error("the reboot request outlived the probe's stop: gokrazy would wait for the probe, the probe for gokrazy")
	}
}

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/presscap/presscap/image/internal/gokconfig"
	"github.com/presscap/presscap/image/internal/tlspin"
)

func instanceWith(t *testing.T, update string) *gokconfig.Config {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"Hostname": "presscap", "Packages": [], "Update": `+update+`}`), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := gokconfig.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestUpdateTargetRefusals(t *testing.T) {
	logf := func(string, ...any) {}
	for _, tt := range []struct{ update, target, want string }{
		{`{"NoPassword": true}`, "", "Update.NoPassword"},
		{`{"UseTLS": "self-signed"}`, "http://127.0.0.1:18080", "Update.UseTLS"},
		{`{}`, "https://127.0.0.1:18443", "no Update.UseTLS"},
		{`{}`, "127.0.0.1:80", "-target"},
	} {
		_, err := updateTarget(instanceWith(t, tt.update), updateFlags{target: tt.target}, logf)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s, -target %q: err = %v, want it to mention %q", tt.update, tt.target, err, tt.want)
		}
	}
	for _, tt := range []struct{ update, from, want string }{
		{`{}`, "http://10.1.2.3", "no Update.UseTLS"},
		{`{"UseTLS": "self-signed"}`, "https://10.1.2.3", "-from-http"},
	} {
		_, err := updateTarget(instanceWith(t, tt.update), updateFlags{fromHTTP: tt.from}, logf)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s, -from-http %q: err = %v, want it to mention %q", tt.update, tt.from, err, tt.want)
		}
	}
	for _, tt := range []struct{ update, want string }{
		{`{}`, "http://presscap:80"},
		{`{"UseTLS": "self-signed"}`, "https://presscap:443"},
		{`{"UseTLS": "self-signed", "HTTPSPort": "8443", "Hostname": "10.1.2.3"}`, "https://10.1.2.3:8443"},
	} {
		tg, err := updateTarget(instanceWith(t, tt.update), updateFlags{}, logf)
		if err != nil || tg.BaseURL != tt.want {
			t.Errorf("%s: default target %v %v, want %s", tt.update, tg, err, tt.want)
		}
	}
	// -from-http: pushed over plain HTTP, awaited over HTTPS on the same host.
	tg, err := updateTarget(instanceWith(t, `{"UseTLS": "self-signed"}`), updateFlags{fromHTTP: "http://10.1.2.3:80"}, logf)
	if err != nil || tg.BaseURL != "http://10.1.2.3:80" || tg.After == nil || tg.After.BaseURL != "https://10.1.2.3:443" {
		t.Errorf("-from-http: %+v %v", tg, err)
	}
}

// TestUpdateOverTLSPinsTheDevice runs make update's client against
// gokrazy-like HTTPS servers on loopback: the first is pinned, one with
// another certificate never sees a request, and a plain HTTP port that
// redirects to HTTPS is not followed.
func TestUpdateOverTLSPinsTheDevice(t *testing.T) {
	c := instanceWith(t, `{"UseTLS": "self-signed", "HTTPPassword": "secret"}`)
	certPEM, keyPEM, err := c.TLSCertificate(true) // what the build does
	if err != nil {
		t.Fatal(err)
	}
	own, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	var authed atomic.Int32
	status := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pw, ok := r.BasicAuth(); ok && pw == "secret" {
			authed.Add(1)
		}
		w.Write([]byte(`{"BuildTimestamp": "old", "Hostname": "presscap"}`))
	})
	dev := httptest.NewUnstartedServer(status)
	dev.TLS = &tls.Config{Certificates: []tls.Certificate{own}}
	dev.StartTLS()
	defer dev.Close()
	impostor := httptest.NewTLSServer(status) // httptest's own certificate
	defer impostor.Close()

	var log []string
	logf := func(f string, args ...any) { log = append(log, f) }
	tg, err := updateTarget(c, updateFlags{target: dev.URL}, logf)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := tg.GetStatus(context.Background()); err != nil || s.BuildTimestamp != "old" {
		t.Fatalf("status over HTTPS: %+v %v", s, err)
	}
	pin, err := os.ReadFile(c.StatePath(gokconfig.PinFile))
	if err != nil {
		t.Fatalf("first use pinned nothing: %v", err)
	}
	if want := tlspin.Fingerprint(own.Certificate[0]); strings.TrimSpace(string(pin)) != want {
		t.Errorf("pin %q, want %s", pin, want)
	}
	if len(log) != 1 || !strings.Contains(log[0], "first use") {
		t.Errorf("log %q", log)
	}
	before := authed.Load()
	tg2, err := updateTarget(c, updateFlags{target: impostor.URL}, logf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tg2.GetStatus(context.Background()); !errors.Is(err, tlspin.ErrChanged) {
		t.Fatalf("another certificate: err = %v, want the pin refusal", err)
	}
	if authed.Load() != before {
		t.Error("the password reached the server with another certificate")
	}

	// gokrazy's HTTP port redirects to HTTPS when the image has TLS; an
	// instance without TLS must say so, not follow.
	redirect := httptest.NewServer(http.RedirectHandler("https://presscap/", http.StatusFound))
	defer redirect.Close()
	tg3, err := updateTarget(instanceWith(t, `{"HTTPPassword": "secret"}`), updateFlags{target: redirect.URL}, logf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tg3.GetStatus(context.Background()); err == nil || !strings.Contains(err.Error(), "Update.UseTLS") {
		t.Errorf("redirect to HTTPS: %v", err)
	}
}

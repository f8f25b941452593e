package tlspin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// newCert makes a self-signed server certificate as the image build does.
func newCert(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "presscap"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"presscap"},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// device is an HTTPS server on loopback presenting cert; it counts the
// requests that reached its handler (and so carried the password).
type device struct {
	*httptest.Server
	requests atomic.Int32
}

func startDevice(t *testing.T, cert tls.Certificate) *device {
	t.Helper()
	d := &device{}
	d.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.requests.Add(1)
		io.WriteString(w, "ok")
	}))
	d.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	d.StartTLS()
	t.Cleanup(d.Close)
	return d
}

func get(s *Store, url string) error {
	// A fresh transport per request: no connection or session reuse
	// hides a handshake.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: s.TLSConfig()}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", url, nil)
	req.SetBasicAuth("gokrazy", "secret")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func TestFirstUsePinsSameCertPassesOtherRefused(t *testing.T) {
	certA, _ := newCert(t)
	certB, _ := newCert(t)
	a := startDevice(t, certA)
	b := startDevice(t, certB)
	pin := filepath.Join(t.TempDir(), "state", "web-cert-pin.txt")
	var logged []string
	s := &Store{Path: pin, Log: func(f string, args ...any) { logged = append(logged, f) }}

	// First use: accepted and pinned.
	if err := get(s, a.URL); err != nil {
		t.Fatalf("first use: %v", err)
	}
	b1, err := os.ReadFile(pin)
	if err != nil {
		t.Fatalf("first use stored no pin: %v", err)
	}
	if want := Fingerprint(certA.Certificate[0]) + "\n"; string(b1) != want {
		t.Errorf("pin file %q, want %q", b1, want)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "first use") {
		t.Errorf("log %q", logged)
	}
	// Same certificate: accepted, pin unchanged.
	if err := get(s, a.URL); err != nil {
		t.Fatalf("same certificate: %v", err)
	}
	// Another certificate: refused before any request reaches the server.
	err = get(s, b.URL)
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("other certificate: err = %v, want ErrChanged", err)
	}
	for _, w := range []string{Fingerprint(certB.Certificate[0]), Fingerprint(certA.Certificate[0]), "delete " + pin} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if n := b.requests.Load(); n != 0 {
		t.Errorf("the server with the other certificate got %d requests (and the password)", n)
	}
	if a.requests.Load() != 2 {
		t.Errorf("pinned server got %d requests, want 2", a.requests.Load())
	}
	b2, _ := os.ReadFile(pin)
	if string(b2) != string(b1) {
		t.Errorf("a refused certificate changed the pin: %q", b2)
	}
	// A new Store on the same file (the next make update) keeps refusing.
	if err := get(&Store{Path: pin}, b.URL); !errors.Is(err, ErrChanged) {
		t.Errorf("second run: %v", err)
	}
}

func TestExpectedCertificateReplacesPin(t *testing.T) {
	certA, _ := newCert(t)
	certB, pemB := newCert(t)
	certC, _ := newCert(t)
	a := startDevice(t, certA)
	b := startDevice(t, certB)
	c := startDevice(t, certC)
	pin := filepath.Join(t.TempDir(), "pin")
	s := &Store{Path: pin}
	if err := get(s, a.URL); err != nil {
		t.Fatal(err)
	}
	if err := s.Expect(pemB); err != nil {
		t.Fatal(err)
	}
	// Still the old certificate before the reboot.
	if err := get(s, a.URL); err != nil {
		t.Fatalf("old certificate before the switch: %v", err)
	}
	// Neither expected nor pinned: refused.
	if err := get(s, c.URL); !errors.Is(err, ErrChanged) {
		t.Fatalf("unexpected certificate: %v", err)
	}
	// The image's new certificate replaces the pin; then the old one is
	// refused.
	if err := get(s, b.URL); err != nil {
		t.Fatalf("expected certificate: %v", err)
	}
	if got, _ := s.Pinned(); got != Fingerprint(certB.Certificate[0]) {
		t.Errorf("pin %s after the expected certificate", got)
	}
	if err := get(&Store{Path: pin}, a.URL); !errors.Is(err, ErrChanged) {
		t.Errorf("old certificate after the re-pin: %v", err)
	}
}

func TestDamagedPinRefused(t *testing.T) {
	cert, _ := newCert(t)
	d := startDevice(t, cert)
	pin := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pin, []byte("sha256:1234\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := get(&Store{Path: pin}, d.URL)
	if err == nil || !strings.Contains(err.Error(), "not sha256:<64 hex digits>") {
		t.Fatalf("damaged pin: %v", err)
	}
	if d.requests.Load() != 0 {
		t.Errorf("request sent despite a damaged pin")
	}
	if err := (&Store{}).Expect([]byte("junk")); err == nil {
		t.Errorf("Expect accepted junk")
	}
}

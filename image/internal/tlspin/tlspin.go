// Package tlspin authenticates a gokrazy device's web interface by trust on
// first use: the first certificate the device presents is pinned in a file,
// and from then on any other certificate is refused before a request (and
// its password) is sent. A self-signed certificate names no address the
// client can check, so the pin replaces chain and host name verification.
package tlspin

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/presscap/presscap/internal/safefile"
)

// ErrChanged is wrapped by the error for a certificate that differs from
// the pinned one.
var ErrChanged = errors.New("device certificate changed")

// Fingerprint is "sha256:" and the hex SHA-256 of a DER certificate.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Store is one pin file. Its methods may be called from several
// connections at once.
type Store struct {
	// Path holds the pinned fingerprint; it is created on first use.
	Path string
	// Log reports a new or replaced pin (may be nil).
	Log func(format string, args ...any)

	mu   sync.Mutex
	next string // fingerprint that may replace the pin, see Expect
}

// Expect allows the certificate in certPEM to replace the pin when the
// device presents it: an update this client pushes installs that
// certificate, and the device comes back with it.
func (s *Store) Expect(certPEM []byte) error {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return errors.New("expected certificate: no PEM CERTIFICATE block")
	}
	s.mu.Lock()
	s.next = Fingerprint(b.Bytes)
	s.mu.Unlock()
	return nil
}

// Pinned returns the pinned fingerprint, "" before first use.
func (s *Store) Pinned() (string, error) {
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("certificate pin: %w", err)
	}
	fp := strings.TrimSpace(string(b))
	if raw, ok := strings.CutPrefix(fp, "sha256:"); !ok || len(raw) != 64 || !isHex(raw) {
		return "", fmt.Errorf("certificate pin %s: %q is not sha256:<64 hex digits>", s.Path, fp)
	}
	return fp, nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// Verify checks the device's leaf certificate against the pin, pinning it
// when there is none yet.
func (s *Store) Verify(leaf *x509.Certificate) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := Fingerprint(leaf.Raw)
	pinned, err := s.Pinned()
	if err != nil {
		return err
	}
	switch {
	case pinned == got:
		return nil
	case pinned == "":
		if err := s.write(got); err != nil {
			return err
		}
		s.logf("pinned the device's certificate %s in %s (first use)", got, s.Path)
		return nil
	case s.next == got:
		if err := s.write(got); err != nil {
			return err
		}
		s.logf("the device presents the certificate of the image just installed; pin %s replaced by %s", pinned, got)
		return nil
	}
	return fmt.Errorf("%w: it presents %s, but %s pinned %s on first use; "+
		"refusing to send the password to what may be another machine. "+
		"If the certificate changed on purpose (a new card, image or CertPEM), delete %s and retry",
		ErrChanged, got, s.Path, pinned, s.Path)
}

func (s *Store) logf(format string, args ...any) {
	if s.Log != nil {
		s.Log(format, args...)
	}
}

// write replaces the pin atomically, so that a crash leaves the old or
// the new one.
func (s *Store) write(fp string) error {
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
		return fmt.Errorf("certificate pin: %w", err)
	}
	if err := safefile.WriteFile(s.Path, []byte(fp+"\n"), 0o600); err != nil {
		return fmt.Errorf("certificate pin: %w", err)
	}
	return nil
}

// TLSConfig returns a client configuration that accepts exactly the pinned
// certificate (or pins the first one).
func (s *Store) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Chain and name checks are replaced by the pin, which
		// VerifyConnection checks on every handshake, resumed ones too.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the device presented no certificate")
			}
			return s.Verify(cs.PeerCertificates[0])
		},
	}
}

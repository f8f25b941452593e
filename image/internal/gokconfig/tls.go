package gokconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// StateDir holds what the image tool generates for an instance and keeps
// between builds and updates (git-ignored): the self-signed web certificate
// and the update client's certificate pin.
const StateDir = "state"

// Files under StateDir.
const (
	SelfSignedCertFile = "web-cert.pem"
	SelfSignedKeyFile  = "web-key.pem"
	PinFile            = "web-cert-pin.txt"
)

// checkUpdate refuses Update settings this assembler would otherwise have
// to ignore or that gokrazy would silently replace by a default.
func (c *Config) checkUpdate() error {
	u := c.Update
	if u == nil {
		return nil
	}
	for _, p := range []struct{ field, v string }{{"HTTPPort", u.HTTPPort}, {"HTTPSPort", u.HTTPSPort}} {
		if p.v == "" {
			continue
		}
		// gokrazy falls back to its default port on anything else.
		if n, err := strconv.Atoi(p.v); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p.v {
			return fmt.Errorf("Update.%s %q is not a port number (1-65535)", p.field, p.v)
		}
	}
	if h := u.Hostname; h != "" && net.ParseIP(h) == nil {
		for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
			if !hostnameRE.MatchString(label) {
				return fmt.Errorf("Update.Hostname %q is neither a host name nor an IP address", h)
			}
		}
	}
	switch tlsMode := u.UseTLS; {
	case tlsMode == "", tlsMode == "off", tlsMode == "self-signed":
	default:
		// gok's third form: "<certificate path>,<key path>".
		cert, key, ok := strings.Cut(tlsMode, ",")
		if !ok || cert == "" || key == "" || strings.Contains(key, ",") {
			return fmt.Errorf(`Update.UseTLS %q: want "", "off", "self-signed" or "<certificate file>,<key file>"`, tlsMode)
		}
		for _, p := range []string{cert, key} {
			if _, err := os.Stat(c.Resolve(p)); err != nil {
				return fmt.Errorf("Update.UseTLS: %w", err)
			}
		}
	}
	if (u.CertPEM == "") != (u.KeyPEM == "") {
		if u.CertPEM == "" {
			return errors.New("Update.KeyPEM is set without Update.CertPEM")
		}
		return errors.New("Update.CertPEM is set without Update.KeyPEM")
	}
	if u.CertPEM != "" {
		if u.UseTLS != "" {
			return fmt.Errorf("Update.CertPEM and Update.UseTLS %q both choose the web certificate: keep one", u.UseTLS)
		}
		if _, err := tls.X509KeyPair([]byte(u.CertPEM), []byte(u.KeyPEM)); err != nil {
			return fmt.Errorf("Update.CertPEM/Update.KeyPEM: %w", err)
		}
	}
	if u.NoPassword {
		if u.HTTPPassword != "" {
			return errors.New("Update.NoPassword and Update.HTTPPassword are both set")
		}
		// Without a password gokrazy serves only its Unix socket, so TLS
		// settings would have no effect.
		if c.TLSEnabled() {
			return errors.New("Update.NoPassword: gokrazy then serves only its Unix socket, so Update.UseTLS/CertPEM would have no effect: remove them")
		}
	}
	if c.TLSEnabled() && c.HTTPPort() == c.HTTPSPort() {
		return fmt.Errorf("Update.HTTPSPort %s is also the HTTP port", c.HTTPSPort())
	}
	return nil
}

// NoPassword reports Update.NoPassword: the image carries no update
// password, and gokrazy serves its web interface only on a Unix socket.
func (c *Config) NoPassword() bool {
	return c.Update != nil && c.Update.NoPassword
}

// TLSEnabled reports whether the device's web interface speaks HTTPS:
// UseTLS is "self-signed" or a certificate/key pair, or CertPEM is set.
// Unlike gok, an empty UseTLS never picks up certificates from
// ~/.config/gokrazy: the image depends on the instance directory only.
func (c *Config) TLSEnabled() bool {
	if c.Update == nil {
		return false
	}
	return (c.Update.UseTLS != "" && c.Update.UseTLS != "off") || c.Update.CertPEM != ""
}

// StatePath is a file under the instance's state directory.
func (c *Config) StatePath(name string) string {
	return filepath.Join(c.Dir, StateDir, name)
}

// TLSCertificate returns the PEM certificate and key gokrazy serves its web
// interface with, or nils when TLS is off. For "self-signed" the pair lives
// in the state directory; create makes it when it is missing (a build),
// otherwise a missing pair returns nils (an update from another checkout,
// which cannot know the certificate in advance).
func (c *Config) TLSCertificate(create bool) (certPEM, keyPEM []byte, err error) {
	if !c.TLSEnabled() {
		return nil, nil, nil
	}
	u := c.Update
	var certPath, keyPath string
	switch {
	case u.CertPEM != "":
		return []byte(u.CertPEM + "\n"), []byte(u.KeyPEM + "\n"), nil
	case u.UseTLS == "self-signed":
		certPath, keyPath = c.StatePath(SelfSignedCertFile), c.StatePath(SelfSignedKeyFile)
		_, cerr := os.Stat(certPath)
		_, kerr := os.Stat(keyPath)
		switch noCert, noKey := errors.Is(cerr, fs.ErrNotExist), errors.Is(kerr, fs.ErrNotExist); {
		case noCert && noKey:
			if !create {
				return nil, nil, nil
			}
			if err := c.writeSelfSigned(certPath, keyPath); err != nil {
				return nil, nil, fmt.Errorf("Update.UseTLS self-signed: %w", err)
			}
		case noCert != noKey:
			// A build interrupted between the two files.
			return nil, nil, fmt.Errorf("Update.UseTLS self-signed: only one of %s and %s exists: delete it to make a new pair", certPath, keyPath)
		}
	default:
		cert, key, _ := strings.Cut(u.UseTLS, ",")
		certPath, keyPath = c.Resolve(cert), c.Resolve(key)
	}
	if certPEM, err = os.ReadFile(certPath); err != nil {
		return nil, nil, fmt.Errorf("Update.UseTLS: %w", err)
	}
	if keyPEM, err = os.ReadFile(keyPath); err != nil {
		return nil, nil, fmt.Errorf("Update.UseTLS: %w", err)
	}
	// gokrazy refuses to boot its web interface on a bad pair; find out here.
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return nil, nil, fmt.Errorf("Update.UseTLS: %s and %s: %w", certPath, keyPath, err)
	}
	return certPEM, keyPEM, nil
}

// writeSelfSigned makes an ECDSA P-256 certificate for the instance's host
// names. Its validity is long because the update client pins it rather
// than checking dates; browsers distrust it either way.
func (c *Config) writeSelfSigned(certPath, keyPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	names := []string{c.Hostname}
	if c.Update.Hostname != "" && net.ParseIP(c.Update.Hostname) == nil && c.Update.Hostname != c.Hostname {
		names = append(names, c.Update.Hostname)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: c.Hostname, Organization: []string{"presscap gokrazy web interface"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              names,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
		return err
	}
	// Exclusive creation never overwrites a pair that devices already
	// serve (a concurrent build then fails instead).
	if err := writeExclusive(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return writeExclusive(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeExclusive(p string, b []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

package gokconfig

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func loadUpdate(t *testing.T, dir, update string) (*Config, error) {
	t.Helper()
	write(t, dir, "config.json", `{"Hostname": "presscap", "Packages": [], "Update": `+update+`}`)
	return Load(dir)
}

// pemJSON is a PEM block as a JSON string, the way gok's CertPEM holds it.
func pemJSON(b []byte) string {
	j, _ := json.Marshal(strings.TrimSpace(string(b)))
	return string(j)
}

func TestUpdateFieldsRefusedNamed(t *testing.T) {
	// A real pair for the CertPEM cases.
	src := t.TempDir()
	c, err := loadUpdate(t, src, `{"UseTLS": "self-signed"}`)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := c.TLSCertificate(true)
	if err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	c2, _ := loadUpdate(t, other, `{"UseTLS": "self-signed"}`)
	_, key2, err := c2.TLSCertificate(true)
	if err != nil {
		t.Fatal(err)
	}
	pair := `"CertPEM": ` + pemJSON(cert) + `, "KeyPEM": ` + pemJSON(key)
	for _, tt := range []struct{ name, update, want string }{
		{"port word", `{"HTTPPort": "http"}`, "Update.HTTPPort"},
		{"port range", `{"HTTPSPort": "70000"}`, "Update.HTTPSPort"},
		{"port leading zero", `{"HTTPPort": "080"}`, "Update.HTTPPort"},
		{"hostname", `{"Hostname": "a/b"}`, "Update.Hostname"},
		{"UseTLS typo", `{"UseTLS": "selfsigned"}`, "Update.UseTLS"},
		{"UseTLS missing files", `{"UseTLS": "nope.pem,nope.key"}`, "Update.UseTLS"},
		{"cert without key", `{"CertPEM": ` + pemJSON(cert) + `}`, "Update.CertPEM is set without Update.KeyPEM"},
		{"key without cert", `{"KeyPEM": ` + pemJSON(key) + `}`, "Update.KeyPEM is set without Update.CertPEM"},
		{"mismatched pair", `{"CertPEM": ` + pemJSON(cert) + `, "KeyPEM": ` + pemJSON(key2) + `}`, "Update.CertPEM/Update.KeyPEM"},
		{"not PEM", `{"CertPEM": "x", "KeyPEM": "y"}`, "Update.CertPEM/Update.KeyPEM"},
		{"CertPEM and UseTLS off", `{"UseTLS": "off", ` + pair + `}`, `Update.CertPEM and Update.UseTLS "off"`},
		{"CertPEM and self-signed", `{"UseTLS": "self-signed", ` + pair + `}`, "Update.CertPEM and Update.UseTLS"},
		{"NoPassword and password", `{"NoPassword": true, "HTTPPassword": "x"}`, "Update.NoPassword and Update.HTTPPassword"},
		{"NoPassword and TLS", `{"NoPassword": true, "UseTLS": "self-signed"}`, "Update.NoPassword"},
		{"same ports", `{"UseTLS": "self-signed", "HTTPPort": "8443", "HTTPSPort": "8443"}`, "Update.HTTPSPort 8443 is also the HTTP port"},
	} {
		_, err := loadUpdate(t, t.TempDir(), tt.update)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tt.name, err, tt.want)
		}
	}
	// And what is accepted.
	for _, ok := range []string{`{}`, `{"UseTLS": "off"}`, `{"UseTLS": "self-signed", "HTTPSPort": "8443"}`, `{` + pair + `}`,
		`{"NoPassword": true}`, `{"Hostname": "10.0.0.7"}`, `{"Hostname": "presscap.lan"}`} {
		if _, err := loadUpdate(t, t.TempDir(), ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
}

func TestSelfSignedCertificateMadeOnceAndKept(t *testing.T) {
	dir := t.TempDir()
	c, err := loadUpdate(t, dir, `{"UseTLS": "self-signed", "Hostname": "presscap.example"}`)
	if err != nil {
		t.Fatal(err)
	}
	if !c.TLSEnabled() {
		t.Fatal("self-signed: TLS not enabled")
	}
	// An update from a checkout that never built does not invent one.
	if cert, key, err := c.TLSCertificate(false); cert != nil || key != nil || err != nil {
		t.Fatalf("TLSCertificate(false) before any build: %q %q %v", cert, key, err)
	}
	cert, key, err := c.TLSCertificate(true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(cert, key); err != nil {
		t.Fatalf("generated pair: %v", err)
	}
	st, err := os.Stat(filepath.Join(dir, StateDir, SelfSignedKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", st, err)
	}
	b, _ := pem.Decode(cert)
	x, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(x.DNSNames, ",") != "presscap,presscap.example" {
		t.Errorf("DNS names %v", x.DNSNames)
	}
	// Every later build and update uses the same pair: updates must not
	// change the certificate the client pinned.
	for _, create := range []bool{true, false} {
		c2, _ := loadUpdate(t, dir, `{"UseTLS": "self-signed"}`)
		cert2, key2, err := c2.TLSCertificate(create)
		if err != nil || !bytes.Equal(cert, cert2) || !bytes.Equal(key, key2) {
			t.Errorf("TLSCertificate(%v) again: a different pair (%v)", create, err)
		}
	}
	// gok's "<cert>,<key>" form, relative to the instance directory.
	c3, err := loadUpdate(t, dir, `{"UseTLS": "state/web-cert.pem,state/web-key.pem"}`)
	if err != nil {
		t.Fatal(err)
	}
	if cert3, _, err := c3.TLSCertificate(false); err != nil || !bytes.Equal(cert3, cert) {
		t.Errorf("UseTLS with paths: %v", err)
	}
	// CertPEM/KeyPEM literals are served as given.
	c4, err := loadUpdate(t, t.TempDir(), `{"CertPEM": `+pemJSON(cert)+`, "KeyPEM": `+pemJSON(key)+`}`)
	if err != nil {
		t.Fatal(err)
	}
	if cert4, key4, err := c4.TLSCertificate(true); err != nil || !tlsPairEqual(cert4, cert) || !tlsPairEqual(key4, key) {
		t.Errorf("CertPEM: %v", err)
	}
	// Half a pair (a build cut between the two files) is an error, not a
	// silent new certificate.
	if err := os.Remove(filepath.Join(dir, StateDir, SelfSignedCertFile)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.TLSCertificate(true); err == nil || !strings.Contains(err.Error(), "only one of") {
		t.Errorf("half a pair: %v", err)
	}
	for _, off := range []string{`{}`, `{"UseTLS": "off"}`} {
		c5, _ := loadUpdate(t, t.TempDir(), off)
		if c5.TLSEnabled() {
			t.Errorf("%s: TLS enabled", off)
		}
		if cert, _, _ := c5.TLSCertificate(true); cert != nil {
			t.Errorf("%s: a certificate", off)
		}
	}
}

func tlsPairEqual(a, b []byte) bool {
	return bytes.Equal(bytes.TrimSpace(a), bytes.TrimSpace(b))
}

package devicepw

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSealOpen: a password sealed to the provider's public key opens with
// its private key only; the sealed text does not hold the password; a key
// file is never replaced.
func TestSealOpen(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "provider.key")
	pub, err := GenerateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	const pw = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	sealed, err := Seal(pw, pub)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Seal(pw, pub)
	if strings.Contains(sealed, pw) || sealed == again {
		t.Fatalf("sealed %q (again %q) shows the password or repeats", sealed, again)
	}
	got, err := Open(sealed, keyFile)
	if err != nil || got != pw {
		t.Fatalf("Open = %q, %v; want %q", got, err, pw)
	}
	other := filepath.Join(dir, "other.key")
	if _, err := GenerateKey(other); err != nil {
		t.Fatal(err)
	}
	if got, err := Open(sealed, other); err == nil || !strings.Contains(err.Error(), "does not open") {
		t.Fatalf("another key opened it: %q, %v", got, err)
	}
	if _, err := GenerateKey(keyFile); err == nil {
		t.Fatal("an existing key file was replaced")
	}
	if got, err := Open(sealed, keyFile); err != nil || got != pw {
		t.Fatalf("after the refused GenerateKey: %q, %v", got, err)
	}
	for _, bad := range []string{"", "not base64!", "c2hvcnQ="} {
		if _, err := Seal(pw, bad); err == nil {
			t.Errorf("Seal to %q: no error", bad)
		}
	}
}

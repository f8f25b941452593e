package release

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func testKey(t *testing.T) (ed25519.PrivateKey, ed25519.PublicKey) {
	t.Helper()
	priv, pub, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Equal(k.Public()) {
		t.Fatal("NewKey's public key is not the seed's")
	}
	return k, p
}

var rootData = bytes.Repeat([]byte("hsqs root "), 1000)

func testManifest(t *testing.T) *Manifest {
	t.Helper()
	root, err := NewPart(PartRoot, "root.squashfs", bytes.NewReader(rootData))
	if err != nil {
		t.Fatal(err)
	}
	boot, err := NewPart(PartBoot, "boot.fat", strings.NewReader("boot fat"))
	if err != nil {
		t.Fatal(err)
	}
	return &Manifest{
		Format: Format, Version: "2026-12-06T22:00:00Z", Created: time.Date(2026, 12, 6, 22, 1, 0, 0, time.UTC),
		Instance: "presscap", RollbackSafe: true, Urgent: true,
		BootFiles: map[string]string{"cmdline.txt": strings.Repeat("a", 64)},
		Parts:     []Part{root, boot},
	}
}

func TestManifestRoundTrip(t *testing.T) {
	k, pub := testKey(t)
	m := testManifest(t)
	b, sig, err := Sign(m, k)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(b, sig, []ed25519.PublicKey{pub})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
	}
	if err := Check(got, "presscap", "2026-12-01T00:00:00Z"); err != nil {
		t.Fatalf("Check of a newer release for this instance: %v", err)
	}
}

func TestWrongKeyRefused(t *testing.T) {
	k, _ := testKey(t)
	_, other := testKey(t)
	b, sig, err := Sign(testManifest(t), k)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(b, sig, []ed25519.PublicKey{other}); !errors.Is(err, ErrSignature) {
		t.Fatalf("Verify with another key: %v, want ErrSignature", err)
	}
	// The signature covers the bytes: a manifest changed after signing
	// (here: urgent turned off by someone on the server) is refused.
	tampered := bytes.Replace(b, []byte(`"urgent": true`), []byte(`"urgent": false`), 1)
	if bytes.Equal(tampered, b) {
		t.Fatal("test manifest has no urgent field to change")
	}
	pub := k.Public().(ed25519.PublicKey)
	if _, err := Verify(tampered, sig, []ed25519.PublicKey{pub}); !errors.Is(err, ErrSignature) {
		t.Fatalf("Verify of a changed manifest: %v, want ErrSignature", err)
	}
	if _, err := Verify(b, []byte("not base64!"), []ed25519.PublicKey{pub}); err == nil || !strings.Contains(err.Error(), SignatureFile) {
		t.Fatalf("Verify of a malformed signature: %v, want an error naming %s", err, SignatureFile)
	}
	if _, err := Verify(b, sig, nil); err == nil || !strings.Contains(err.Error(), "release.public_keys") {
		t.Fatalf("Verify without keys: %v", err)
	}
}

func TestKeyRotation(t *testing.T) {
	oldKey, oldPub := testKey(t)
	newKey, newPub := testKey(t)
	trusted := []ed25519.PublicKey{oldPub, newPub}
	for name, k := range map[string]ed25519.PrivateKey{"old": oldKey, "new": newKey} {
		b, sig, err := Sign(testManifest(t), k)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(b, sig, trusted); err != nil {
			t.Errorf("%s key during rotation: %v", name, err)
		}
	}
	// After the rotation the old key's releases are refused.
	b, sig, _ := Sign(testManifest(t), oldKey)
	if _, err := Verify(b, sig, []ed25519.PublicKey{newPub}); !errors.Is(err, ErrSignature) {
		t.Fatalf("old key after rotation: %v, want ErrSignature", err)
	}
	keys, err := ParsePublicKeys([]string{EncodePublicKey(oldPub), "c2hvcnQ="})
	if err == nil || !strings.Contains(err.Error(), "release.public_keys[1]") {
		t.Fatalf("ParsePublicKeys with a short key: %v %v, want an error naming release.public_keys[1]", keys, err)
	}
}

func TestCorruptedPartRefused(t *testing.T) {
	m := testManifest(t)
	p, _ := m.Part(PartRoot)
	if err := VerifyPart(p, bytes.NewReader(rootData)); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(rootData)
	bad[len(bad)/2] ^= 1
	if err := VerifyPart(p, bytes.NewReader(bad)); !errors.Is(err, ErrHash) || !strings.Contains(err.Error(), "hashes to") {
		t.Fatalf("one flipped bit: %v, want ErrHash", err)
	}
	if err := VerifyPart(p, bytes.NewReader(rootData[:len(rootData)-1])); !errors.Is(err, ErrHash) {
		t.Fatalf("truncated: %v, want ErrHash", err)
	}
	if err := VerifyPart(p, bytes.NewReader(append(bytes.Clone(rootData), 0))); !errors.Is(err, ErrHash) {
		t.Fatalf("one byte more: %v, want ErrHash", err)
	}
}

func TestCheckRefuses(t *testing.T) {
	m := testManifest(t)
	if err := Check(m, "presscap", m.Version); !errors.Is(err, ErrNotNewer) {
		t.Errorf("same version: %v, want ErrNotNewer", err)
	}
	if err := Check(m, "presscap", "2026-12-07T00:00:00Z"); !errors.Is(err, ErrNotNewer) {
		t.Errorf("older version: %v, want ErrNotNewer", err)
	}
	if err := Check(m, "presscap-x86", "2026-12-01T00:00:00Z"); !errors.Is(err, ErrOtherInstance) {
		t.Errorf("other instance: %v, want ErrOtherInstance", err)
	}
	m.RollbackSafe = false
	if err := Check(m, "presscap", "2026-12-01T00:00:00Z"); !errors.Is(err, ErrNotRollback) {
		t.Errorf("boot change without approval: %v, want ErrNotRollback", err)
	}
	m.BootChangeApproved = true
	if err := Check(m, "presscap", "2026-12-01T00:00:00Z"); err != nil {
		t.Errorf("approved boot change: %v", err)
	}
}

func TestValidateRefusesPaths(t *testing.T) {
	k, pub := testKey(t)
	for name, mod := range map[string]func(*Manifest){
		"path in file":    func(m *Manifest) { m.Parts[0].File = "../../perm/gokr-pw.txt" },
		"slash in file":   func(m *Manifest) { m.Parts[0].File = "a/b" },
		"unknown part":    func(m *Manifest) { m.Parts[0].Name = "kernel" },
		"no boot":         func(m *Manifest) { m.Parts = m.Parts[:1] },
		"bad hash":        func(m *Manifest) { m.Parts[0].SHA256 = "xyz" },
		"zero size":       func(m *Manifest) { m.Parts[0].Size = 0 },
		"bad version":     func(m *Manifest) { m.Version = "v2" },
		"format":          func(m *Manifest) { m.Format = 2 },
		"eeprom w/o boot": func(m *Manifest) { m.EEPROM = &EEPROM{PieepromSHA256: "x"} },
	} {
		m := testManifest(t)
		mod(m)
		if _, _, err := Sign(m, k); err == nil {
			t.Errorf("%s: Sign accepted %+v", name, m)
		}
	}
	// A signed manifest with a field this build does not know is refused
	// rather than half understood.
	b, _, _ := Sign(testManifest(t), k)
	b = bytes.Replace(b, []byte(`"urgent"`), []byte(`"surprise": 1, "urgent"`), 1)
	sig := ed25519.Sign(k, b)
	if _, err := Verify(b, []byte(encode(sig)), []ed25519.PublicKey{pub}); err == nil || !strings.Contains(err.Error(), "surprise") {
		t.Fatalf("unknown field: %v", err)
	}
}

func TestBootChanges(t *testing.T) {
	prev := map[string]string{"a": "1", "b": "2", "c": "3"}
	next := map[string]string{"a": "1", "b": "9", "d": "4"}
	if got, want := BootChanges(prev, next), []string{"b", "c", "d"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("BootChanges = %v, want %v", got, want)
	}
	if got := BootChanges(prev, prev); len(got) != 0 {
		t.Fatalf("no change: %v", got)
	}
}

func encode(sig []byte) string { return base64.StdEncoding.EncodeToString(sig) }

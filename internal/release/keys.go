package release

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
)

// Keys are written as base64 (standard encoding): the 32-byte public key
// for release.public_keys, the 32-byte seed for the signing key.

// ParsePublicKey reads one entry of release.public_keys.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("release public key %q: want the base64 of a %d-byte ed25519 public key", s, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// ParsePublicKeys reads release.public_keys, naming the bad entry.
func ParsePublicKeys(ss []string) ([]ed25519.PublicKey, error) {
	out := make([]ed25519.PublicKey, 0, len(ss))
	for i, s := range ss {
		k, err := ParsePublicKey(s)
		if err != nil {
			return nil, fmt.Errorf("release.public_keys[%d]: %w", i, err)
		}
		out = append(out, k)
	}
	return out, nil
}

// ParsePrivateKey reads a signing key file's content (the base64 seed).
func ParsePrivateKey(s string) (ed25519.PrivateKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.SeedSize {
		return nil, fmt.Errorf("release signing key: want the base64 of a %d-byte ed25519 seed (as image release-key writes)", ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(b), nil
}

// NewKey makes a signing key: the seed file content and the public key
// for release.public_keys.
func NewKey() (private, public string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	return base64.StdEncoding.EncodeToString(priv.Seed()) + "\n", EncodePublicKey(pub), nil
}

// EncodePublicKey is the form release.public_keys holds.
func EncodePublicKey(k ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(k)
}

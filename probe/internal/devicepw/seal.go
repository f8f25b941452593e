package devicepw

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"

	"github.com/presscap/presscap/internal/safefile"
)

// Where probes share one SFTP account, every probe can read every report:
// the password then travels sealed (a NaCl anonymous box, X25519 and
// XSalsa20-Poly1305) to the provider's key, whose public half the image
// carries (upload.password_recipient) and whose private half only the
// provider's `probe fleet` holds.

// KeyLen is the length of an X25519 key.
const KeyLen = 32

// ParseKey reads a key as the provider's files hold it: 32 bytes in
// standard base64, white space around it ignored.
func ParseKey(s string) (*[KeyLen]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	if len(b) != KeyLen {
		return nil, fmt.Errorf("%d bytes, an X25519 key has %d", len(b), KeyLen)
	}
	var k [KeyLen]byte
	copy(k[:], b)
	return &k, nil
}

// Seal encrypts pw to recipient (base64, see ParseKey); only the holder of
// its private key opens it (Open). Each call gives another box.
func Seal(pw, recipient string) (string, error) {
	pub, err := ParseKey(recipient)
	if err != nil {
		return "", fmt.Errorf("password recipient: %w", err)
	}
	b, err := box.SealAnonymous(nil, []byte(pw), pub, rand.Reader)
	if err != nil {
		return "", fmt.Errorf("seal the device password: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// Open decrypts a sealed password with the private key in keyFile
// (GenerateKey's).
func Open(sealed, keyFile string) (string, error) {
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return "", fmt.Errorf("read password key: %w", err)
	}
	priv, err := ParseKey(string(b))
	if err != nil {
		return "", fmt.Errorf("password key %s: %w", keyFile, err)
	}
	pubB, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	if err != nil {
		return "", fmt.Errorf("password key %s: %w", keyFile, err)
	}
	var pub [KeyLen]byte
	copy(pub[:], pubB)
	boxed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sealed))
	if err != nil {
		return "", fmt.Errorf("sealed password: not base64: %w", err)
	}
	pw, ok := box.OpenAnonymous(nil, boxed, &pub, priv)
	if !ok {
		return "", fmt.Errorf("sealed password does not open with %s (sealed to another key, or damaged)", keyFile)
	}
	return string(pw), nil
}

// GenerateKey writes a new private key to keyFile (mode 0600; an existing
// file is never replaced) and returns the public key for the image's
// upload.password_recipient.
func GenerateKey(keyFile string) (recipient string, err error) {
	if _, err := os.Lstat(keyFile); err == nil {
		return "", fmt.Errorf("%s exists: not replaced (the passwords sealed to it would be lost)", keyFile)
	}
	pub, priv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generate X25519 key: %w", err)
	}
	line := base64.StdEncoding.EncodeToString(priv[:]) + "\n"
	if err := safefile.WriteFile(keyFile, []byte(line), 0o600); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(pub[:]), nil
}

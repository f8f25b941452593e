package upload

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/presscap/presscap/internal/safefile"
)

// KeyFileName is the private key's name in the state directory.
const KeyFileName = "id_ed25519"

// LoadOrCreateKey reads the probe's SSH key from path, creating an ed25519
// key pair there (and path+".pub") when it does not exist yet. It returns the
// signer and the public key as an authorized_keys line for the provider.
func LoadOrCreateKey(path string) (ssh.Signer, string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createKey(path); err != nil {
			return nil, "", err
		}
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read SSH key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, "", fmt.Errorf("parse SSH key %s: %w", path, err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " " + keyComment()
	return signer, line, nil
}

func keyComment() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "probe"
	}
	return "presscap@" + h
}

// createKey writes a new key pair. Both files appear complete or not at all,
// so a power cut never leaves a half-written key that would lock the probe out.
func createKey(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create key directory: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate ed25519 key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, keyComment())
	if err != nil {
		return fmt.Errorf("encode private key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return fmt.Errorf("encode public key: %w", err)
	}
	pubLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " " + keyComment() + "\n"
	if err := safefile.WriteFile(path+".pub", []byte(pubLine), 0o644); err != nil {
		return err
	}
	return safefile.WriteFile(path, pem.EncodeToMemory(block), 0o600)
}

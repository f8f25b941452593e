package upload

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"

	"golang.org/x/crypto/ssh"
)

// ErrHostKey marks a connection refused because the server's host key is not
// the pinned one. Such an error never goes away by retrying.
var ErrHostKey = errors.New("host key mismatch")

// hostKeyPin is the parsed Config.HostKey: a full key or a fingerprint.
type hostKeyPin struct {
	key         ssh.PublicKey // nil when only the fingerprint is known
	fingerprint string        // "SHA256:..."
}

func parseHostKeyPin(s string) (hostKeyPin, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "SHA256:") {
		fp := strings.TrimRight(s, "=")
		if len(fp) != len("SHA256:")+43 {
			return hostKeyPin{}, fmt.Errorf("%q is not a SHA256 fingerprint (SHA256: and 43 base64 characters, as ssh-keygen -lf prints)", s)
		}
		return hostKeyPin{fingerprint: fp}, nil
	}
	// A bare key as in authorized_keys or *.pub files.
	if key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s)); err == nil {
		return hostKeyPin{key: key, fingerprint: ssh.FingerprintSHA256(key)}, nil
	}
	// A known_hosts line: the host patterns are not checked, the server
	// address in the configuration already says which host this is.
	marker, _, key, _, _, err := ssh.ParseKnownHosts([]byte(s))
	if err != nil {
		return hostKeyPin{}, fmt.Errorf("neither a known_hosts line, a public key nor a SHA256: fingerprint: %w", err)
	}
	// Pinning the key of such a line would trust a key the line revokes,
	// or a CA's key as if it were the server's (certificates are not
	// checked): the opposite of, or other than, what the line says.
	if marker != "" {
		return hostKeyPin{}, fmt.Errorf("a known_hosts line marked @%s cannot pin the server's key; give the server's own host key line without a marker", marker)
	}
	return hostKeyPin{key: key, fingerprint: ssh.FingerprintSHA256(key)}, nil
}

// fingerprintProblem says why a "SHA256:" pin of the right length cannot
// be any key's fingerprint (not base64 of a 32-byte digest), or "".
func fingerprintProblem(s string) string {
	fp, ok := strings.CutPrefix(strings.TrimSpace(s), "SHA256:")
	if !ok {
		return ""
	}
	b, err := base64.RawStdEncoding.Strict().DecodeString(strings.TrimRight(fp, "="))
	if err != nil || len(b) != sha256.Size {
		return fmt.Sprintf("%q is not base64 of a SHA-256 digest, so no server key can match it (copy it as ssh-keygen -lf prints it)", s)
	}
	return ""
}

// algorithms returns the host key algorithms to ask for, so that a server
// with several host keys offers the pinned one.
func (p hostKeyPin) algorithms() []string {
	if p.key == nil {
		return nil
	}
	switch p.key.Type() {
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	default:
		return []string{p.key.Type()}
	}
}

func (p hostKeyPin) callback() ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		got := ssh.FingerprintSHA256(key)
		ok := got == p.fingerprint
		if p.key != nil {
			ok = bytes.Equal(key.Marshal(), p.key.Marshal())
		}
		if ok {
			return nil
		}
		if fp := fingerprintProblem(p.fingerprint); fp != "" {
			return fmt.Errorf("%w: server %s offered %s %s, but upload.host_key %s; refusing to connect",
				ErrHostKey, hostname, key.Type(), got, fp)
		}
		return fmt.Errorf("%w: server %s offered %s %s, but upload.host_key pins %s; refusing to connect (if the provider really changed the server's key, put the new one in upload.host_key)",
			ErrHostKey, hostname, key.Type(), got, p.fingerprint)
	}
}

package upload

import (
	"bytes"
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
	_, _, key, _, _, err := ssh.ParseKnownHosts([]byte(s))
	if err != nil {
		return hostKeyPin{}, fmt.Errorf("neither a known_hosts line, a public key nor a SHA256: fingerprint: %w", err)
	}
	return hostKeyPin{key: key, fingerprint: ssh.FingerprintSHA256(key)}, nil
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
		return fmt.Errorf("%w: server %s offered %s %s, but upload.host_key pins %s; refusing to connect (if the provider really changed the server's key, put the new one in upload.host_key)",
			ErrHostKey, hostname, key.Type(), got, p.fingerprint)
	}
}

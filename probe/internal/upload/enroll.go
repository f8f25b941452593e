package upload

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/presscap/presscap/probe/internal/fleet"
)

// The placeholders of upload.user.
const (
	idPlaceholder  = "{id}"
	id8Placeholder = "{id8}"
)

// ForProbe is c with the probe's id put into upload.user ({id}, {id8}):
// one image serves a fleet whose probes each log in to an account of
// their own.
func (c Config) ForProbe(id string) Config {
	id8 := id
	if len(id8) > 8 {
		id8 = id8[len(id8)-8:]
	}
	c.User = strings.NewReplacer(idPlaceholder, id, id8Placeholder, id8).Replace(c.User)
	return c
}

// EnrollPath is where probe id's public key waits for the provider.
func (c Config) EnrollPath(id string) string {
	return path.Join(c.RemoteDir, fleet.EnrollDir, id+".pub")
}

// ErrNotEnrolled says the probe's account refused its own key and the key
// waits in fleet/enroll for the provider.
type ErrNotEnrolled struct {
	Path string // on the server
	Err  error  // the refused login
}

func (e *ErrNotEnrolled) Error() string {
	return fmt.Sprintf("not enrolled yet: the account refused this probe's key (%v); its public key waits in %s for the provider (probe fleet enroll accept)", e.Err, e.Path)
}

func (e *ErrNotEnrolled) Unwrap() error { return e.Err }

// refusedLogin tells a login the server refused (x/crypto/ssh has no
// error type for it) from a server that could not be reached.
func refusedLogin(err error) bool {
	return err != nil && strings.Contains(err.Error(), "ssh: unable to authenticate")
}

// dialOrEnroll logs in with the probe's own key; where the account
// refuses it and the image carries an enrolment account, the public key
// goes to fleet/enroll/<id>.pub with that account instead, every time
// (the provider may have removed it), and the error is ErrNotEnrolled.
func (u *Uploader) dialOrEnroll(ctx context.Context, id string) (*conn, error) {
	c, _, err := dial(ctx, u.cfg, u.signer)
	if err == nil || !u.cfg.enrolls(err) {
		return c, err
	}
	if _, eerr := enroll(ctx, u.cfg, id, u.pubKey, u.logf); eerr != nil {
		return nil, fmt.Errorf("%w; enrolment as %s failed too: %v", err, u.cfg.EnrollUser, eerr)
	}
	return nil, &ErrNotEnrolled{Path: u.cfg.EnrollPath(id), Err: err}
}

// enrolls says whether a failed login of the probe's own key (login) is
// one the enrolment account answers: the account refused the key, and
// the image names an enrolment account rather than a fleet key.
func (c Config) enrolls(login error) bool {
	return refusedLogin(login) && c.EnrollUser != "" && c.KeyFile == ""
}

// enroll writes the probe's public key line pubKey to
// fleet/enroll/<id>.pub as the enrolment account, unless the same line is
// there already; written says whether it wrote.
func enroll(ctx context.Context, cfg Config, id, pubKey string, logf func(string, ...any)) (written bool, err error) {
	signer, err := readSigner(cfg.EnrollKeyFile)
	if err != nil {
		return false, fmt.Errorf("upload.enroll_key_file: %w", err)
	}
	ec := cfg
	ec.User, ec.Auth = cfg.EnrollUser, AuthKey
	c, _, err := dial(ctx, ec, signer)
	if err != nil {
		return false, err
	}
	defer c.Close()
	p := ec.EnrollPath(id)
	line := []byte(pubKey + "\n")
	if f, err := c.sftp.Open(p); err == nil {
		old, _ := io.ReadAll(io.LimitReader(f, 4096))
		f.Close()
		if bytes.Equal(old, line) {
			return false, nil
		}
	}
	if err := putSmall(c, p, line); err != nil {
		return false, err
	}
	if logf != nil {
		logf("upload: public key written to %s as %s: waiting for the provider to accept it", p, ec.User)
	}
	return true, nil
}

// readSigner reads an existing private key (never created here).
func readSigner(keyFile string) (ssh.Signer, error) {
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read SSH key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("parse SSH key %s: %w", keyFile, err)
	}
	return signer, nil
}

// Package enroll is the provider's side of enrolment: on the SFTP server,
// it lists the probes whose own keys wait in the enrolment account's
// fleet/enroll/<id>.pub and, once the provider confirms one, puts that
// key in the probe's account's authorized_keys. Nothing is accepted
// without the provider: the enrolment key is on every card, so a pending
// key proves only that someone holds a card.
package enroll

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/presscap/presscap/internal/safefile"
	"github.com/presscap/presscap/probe/internal/identity"
)

// Server is the provider's layout (see docs/provider/fleet.md).
type Server struct {
	// Pending is the enrolment account's fleet/enroll directory.
	Pending string
	// Keys holds one authorized_keys file per account, named after it
	// (sshd_config: AuthorizedKeysFile <Keys>/%u).
	Keys string
	// Account names probe id's account ("presscap-<id8>" by default).
	Account func(id string) string
}

// DefaultAccount is "presscap-" and the id's last 8 characters, the
// upload.user "presscap-{id8}" of the image.
func DefaultAccount(id string) string {
	if len(id) > 8 {
		id = id[len(id)-8:]
	}
	return "presscap-" + id
}

// States of a pending key.
const (
	Pending  = "pending"  // not in the account's authorized_keys
	Accepted = "accepted" // already there (the probe wrote it again)
	Replaces = "replaces" // the account has another key: a new /perm, or a stranger
)

// Probe is one pending key.
type Probe struct {
	ID          string    `json:"id"`
	Account     string    `json:"account"`
	Key         string    `json:"key"` // the authorized_keys line
	Fingerprint string    `json:"fingerprint"`
	Written     time.Time `json:"written"`
	State       string    `json:"state"`
	// Problem says why the file cannot be accepted ("" if it can).
	Problem string `json:"problem,omitempty"`
}

// maxKeyFile bounds what is read of a pending file: one key line.
const maxKeyFile = 4096

// List reads the pending keys, sorted by id. A file that is not one
// public key is listed with its problem; files that are not <id>.pub
// (a .part being written) are left out.
func (s Server) List() ([]Probe, error) {
	ents, err := os.ReadDir(s.Pending)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	var out []Probe
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".pub")
		if !ok || identity.Check(id) != nil || !e.Type().IsRegular() {
			continue
		}
		out = append(out, s.read(id))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// read looks at one pending file.
func (s Server) read(id string) Probe {
	p := Probe{ID: id, Account: s.account(id)}
	path := filepath.Join(s.Pending, id+".pub")
	key, written, err := readKey(path)
	p.Written = written
	if err != nil {
		p.Problem = err.Error()
		return p
	}
	p.Key = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
	p.Fingerprint = ssh.FingerprintSHA256(key)
	p.State = Pending
	if cur, err := os.ReadFile(filepath.Join(s.Keys, p.Account)); err == nil && len(bytes.TrimSpace(cur)) > 0 {
		p.State = Replaces
		if k, _, _, _, err := ssh.ParseAuthorizedKey(cur); err == nil && bytes.Equal(k.Marshal(), key.Marshal()) {
			p.State = Accepted
		}
	}
	return p
}

// readKey parses a pending file: exactly one ed25519 key line (the
// probe's), and nothing else, since the enrolment account is shared by
// every card. A symlink is not followed and a FIFO not waited on: the
// drop box is written by any card holder.
func readKey(path string) (ssh.PublicKey, time.Time, error) {
	f, err := safefile.Open(path, os.O_RDONLY)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, err
	}
	if !st.Mode().IsRegular() || st.Size() > maxKeyFile {
		return nil, st.ModTime(), fmt.Errorf("not a key file (%d bytes)", st.Size())
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, st.ModTime(), err
	}
	key, _, opts, rest, err := ssh.ParseAuthorizedKey(b)
	switch {
	case err != nil:
		return nil, st.ModTime(), fmt.Errorf("not a public key: %w", err)
	case len(bytes.TrimSpace(rest)) > 0:
		return nil, st.ModTime(), errors.New("more than one line: a probe writes one key")
	case len(opts) > 0:
		return nil, st.ModTime(), errors.New("the line carries options: a probe writes none")
	case key.Type() != ssh.KeyAlgoED25519:
		return nil, st.ModTime(), fmt.Errorf("a %s key: a probe makes ed25519", key.Type())
	}
	return key, st.ModTime(), nil
}

// Accept puts probe id's pending key into its account's authorized_keys
// (replacing what was there: one probe, one key), then removes the
// pending file. fingerprint must match the pending key (the one the
// provider checked, e.g. from the probe's status page): any card holder can
// write a pending file under any id, even between list and accept.
func (s Server) Accept(id, fingerprint string) (Probe, error) {
	if err := identity.Check(id); err != nil {
		return Probe{}, fmt.Errorf("enroll: %w", err)
	}
	p := s.read(id)
	if p.Problem != "" {
		return p, fmt.Errorf("enroll: %s: %s", filepath.Join(s.Pending, id+".pub"), p.Problem)
	}
	if fingerprint == "" {
		return p, fmt.Errorf("enroll: %s: give the fingerprint of the key checked on the probe (-fingerprint %s if that is it): not accepted", id, p.Fingerprint)
	}
	if fingerprint != p.Fingerprint {
		return p, fmt.Errorf("enroll: the pending key of %s is %s, not %s: not accepted", id, p.Fingerprint, fingerprint)
	}
	if err := os.MkdirAll(s.Keys, 0o755); err != nil {
		return p, fmt.Errorf("enroll: %w", err)
	}
	line := p.Key + " presscap " + id + "\n"
	if err := safefile.WriteFile(filepath.Join(s.Keys, p.Account), []byte(line), 0o644); err != nil {
		return p, fmt.Errorf("enroll: %w", err)
	}
	if err := os.Remove(filepath.Join(s.Pending, id+".pub")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return p, fmt.Errorf("enroll: accepted, but the pending file stays: %w", err)
	}
	p.State = Accepted
	return p, nil
}

// Reject removes probe id's pending key.
func (s Server) Reject(id string) error {
	if err := identity.Check(id); err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	if err := os.Remove(filepath.Join(s.Pending, id+".pub")); err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	return nil
}

func (s Server) account(id string) string {
	if s.Account != nil {
		return s.Account(id)
	}
	return DefaultAccount(id)
}

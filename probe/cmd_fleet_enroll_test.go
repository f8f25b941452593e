package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/presscap/presscap/internal/testing/sshdtest"
	"github.com/presscap/presscap/probe/internal/upload"
)

// enrollServer is the provider's server as docs/provider/fleet.md sets it
// up, on a real OpenSSH: an enrolment account chrooted to a drop box
// (upload/fleet/enroll, write-only) and one account per probe chrooted to
// its own upload/, every account's key in keys/<account>.
type enrollServer struct {
	srv              *sshdtest.Server
	base             string // root of the chroots
	pending, keys    string
	probe, enrolment sshdtest.User
	enrollKey        string // the enrolment account's private key, as the image carries it
}

func startEnrollServer(t *testing.T) *enrollServer {
	t.Helper()
	if testing.Short() {
		t.Skip("needs root, useradd and sshd")
	}
	// sshd wants every component of a chroot owned by root and writable
	// by no one else, which rules out /tmp.
	base, err := os.MkdirTemp("/run", "presscap-enroll-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	e := &enrollServer{base: base, probe: sshdtest.NewUser(t), enrolment: sshdtest.NewUser(t)}
	e.pending = filepath.Join(base, "enroll", "upload", "fleet", "enroll")
	e.keys = filepath.Join(base, "keys")
	probeHome := filepath.Join(base, "accounts", e.probe.Name, "upload")
	for _, d := range []string{base, e.keys, filepath.Dir(e.pending), filepath.Dir(probeHome)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, 0o755)
	}
	// The drop box: the enrolment account creates and renames, lists nothing.
	for _, d := range []struct {
		path string
		u    sshdtest.User
		mode os.FileMode
	}{{e.pending, e.enrolment, 0o300}, {probeHome, e.probe, 0o755}} {
		if err := os.Mkdir(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(d.path, d.mode)
		if err := os.Chown(d.path, d.u.UID, d.u.GID); err != nil {
			t.Fatal(err)
		}
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "presscap enrolment")
	if err != nil {
		t.Fatal(err)
	}
	e.enrollKey = filepath.Join(t.TempDir(), "enroll_ed25519")
	if err := os.WriteFile(e.enrollKey, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(priv)
	if err := os.WriteFile(filepath.Join(e.keys, e.enrolment.Name), ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
		t.Fatal(err)
	}
	e.srv = sshdtest.Start(t, sshdtest.Options{Extra: []string{
		"Match User " + e.enrolment.Name,
		"  AuthorizedKeysFile " + e.keys + "/%u",
		"  ChrootDirectory " + filepath.Join(base, "enroll"),
		"  ForceCommand internal-sftp",
		"Match User " + e.probe.Name,
		"  AuthorizedKeysFile " + e.keys + "/%u",
		"  ChrootDirectory " + filepath.Join(base, "accounts", "%u"),
		"  ForceCommand internal-sftp",
	}})
	return e
}

// uploader is a probe's (its own key in state) logging in as user.
func (e *enrollServer) uploader(t *testing.T, user, keyFile string) *upload.Uploader {
	t.Helper()
	cfg := upload.DefaultConfig()
	cfg.Enabled, cfg.Server, cfg.User, cfg.RemoteDir, cfg.HostKey = true, e.srv.Addr(), user, "/upload", e.srv.KnownHostsLine()
	cfg.EnrollUser, cfg.EnrollKeyFile, cfg.KeyFile = e.enrolment.Name, e.enrollKey, keyFile
	if keyFile != "" {
		cfg.EnrollUser, cfg.EnrollKeyFile = "", ""
	}
	u, err := upload.New(cfg, t.TempDir(), t.TempDir(), nil, nil, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// statusFiles are the reports anywhere below the server's chroots.
func (e *enrollServer) statusFiles(t *testing.T) []string {
	var found []string
	filepath.WalkDir(e.base, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(filepath.Dir(p)) == "status" {
			found = append(found, p)
		}
		return nil
	})
	return found
}

// TestEnrolment: a probe with its own key that its account refuses writes
// the key to fleet/enroll/<id>.pub with the enrolment account, and keeps
// doing so while the provider has not accepted it; its report lands
// nowhere, and the enrolment key cannot write one either. `probe fleet
// enroll list` shows it pending with its key's fingerprint, accept with
// another fingerprint refuses, accept puts the key in the probe's
// account, and the next report arrives there under the probe's own key.
func TestEnrolment(t *testing.T) {
	e := startEnrollServer(t)
	const id = "10000000a1b2c3d4"
	ctx := context.Background()
	u := e.uploader(t, e.probe.Name, "")
	u.SetID(id)
	body := []byte(`{"schema": 1, "id": "` + id + `"}`)

	var ne *upload.ErrNotEnrolled
	for i := range 2 { // not accepted: it keeps enrolling
		err := u.WriteStatus(ctx, id, body)
		if !errors.As(err, &ne) {
			t.Fatalf("report %d before acceptance: %v, want ErrNotEnrolled", i, err)
		}
		got, err := os.ReadFile(filepath.Join(e.pending, id+".pub"))
		if err != nil || string(got) != u.PublicKey()+"\n" {
			t.Fatalf("pending key %q (%v), want %q", got, err, u.PublicKey())
		}
		if i == 0 {
			os.Remove(filepath.Join(e.pending, id+".pub")) // the provider tidied up: written again
		}
	}
	if f := e.statusFiles(t); len(f) != 0 {
		t.Fatalf("a report of a probe not accepted is on the server: %v", f)
	}
	// A card's enrolment key logs in, but cannot place a report.
	thief := e.uploader(t, e.enrolment.Name, e.enrollKey)
	if err := thief.WriteStatus(ctx, id, body); err == nil || errors.As(err, &ne) || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("the enrolment account wrote a report: %v", err)
	}
	if f := e.statusFiles(t); len(f) != 0 {
		t.Fatalf("the enrolment account placed a report: %v", f)
	}

	run := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := dispatch(ctx, env{stdout: &out, stderr: &errb}, append([]string{"fleet", "enroll"}, args...))
		return out.String() + errb.String(), err
	}
	flags := []string{"-pending", e.pending, "-keys", e.keys, "-account", e.probe.Name}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(u.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	fp := ssh.FingerprintSHA256(pub)
	out, err := run(append([]string{"list"}, flags...)...)
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, fp) || !strings.Contains(out, "pending") || !strings.Contains(out, e.probe.Name) {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, err := run(append(append([]string{"accept"}, flags...), "-fingerprint", "SHA256:another", id)...); err == nil {
		t.Fatalf("accept with another fingerprint: %s", out)
	}
	if _, err := os.Stat(filepath.Join(e.keys, e.probe.Name)); err == nil {
		t.Fatal("a refused accept installed the key")
	}
	if out, err := run(append(append([]string{"accept"}, flags...), "-fingerprint", fp, id)...); err != nil {
		t.Fatalf("accept: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(e.pending, id+".pub")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the accepted key is still pending: %v", err)
	}
	if err := u.WriteStatus(ctx, id, body); err != nil {
		t.Fatalf("report after acceptance: %v", err)
	}
	want := filepath.Join(e.base, "accounts", e.probe.Name, "upload", "fleet", "status", id+".json")
	if got, err := os.ReadFile(want); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("report in the probe's account: %q, %v", got, err)
	}
	if f := e.statusFiles(t); len(f) != 1 {
		t.Fatalf("reports on the server: %v, want only %s", f, want)
	}
	if _, err := os.Stat(filepath.Join(e.pending, id+".pub")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("an accepted probe enrolled again: %v", err)
	}
}

// TestUploadTestEnrols: the installer's upload test (`probe upload -test`,
// the status page's "Test the upload") on a probe whose account does not
// know its key yet enrols the key as a report would, names its
// fingerprint for the provider and fails; once the provider accepted
// that key, the test passes.
func TestUploadTestEnrols(t *testing.T) {
	e := startEnrollServer(t)
	const id = "10000000a1b2c3d4"
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc/device-tree"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "proc/device-tree/serial-number"), []byte(id+"\x00"), 0o444); err != nil {
		t.Fatal(err)
	}
	cfg := upload.DefaultConfig()
	cfg.Enabled, cfg.Server, cfg.User, cfg.RemoteDir, cfg.HostKey = true, e.srv.Addr(), e.probe.Name, "/upload", e.srv.KnownHostsLine()
	cfg.EnrollUser, cfg.EnrollKeyFile = e.enrolment.Name, e.enrollKey
	b, _ := json.Marshal(map[string]any{"upload": cfg})
	cfgPath := filepath.Join(t.TempDir(), "probe.json")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	run := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := dispatch(context.Background(), env{stdout: &out, stderr: &errb, sysRoot: root}, args)
		return out.String() + errb.String(), err
	}
	out, err := run("upload", "-config", cfgPath, "-state", state, "-key")
	if err != nil {
		t.Fatalf("-key: %v\n%s", err, out)
	}
	keyLine := out
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(keyLine))
	if err != nil {
		t.Fatalf("-key printed %q: %v", out, err)
	}
	fp := ssh.FingerprintSHA256(pub)
	pending := filepath.Join(e.pending, id+".pub")

	for _, how := range []string{"written", "there already"} {
		out, err = run("upload", "-config", cfgPath, "-state", state, "-test")
		var ne *upload.ErrNotEnrolled
		if !errors.As(err, &ne) {
			t.Fatalf("-test before acceptance: %v, want ErrNotEnrolled\n%s", err, out)
		}
		for _, want := range []string{"FAIL check host key and log in as " + e.probe.Name,
			"ok   enrol: write the public key to /upload/fleet/enroll/" + id + ".pub as " + e.enrolment.Name + ": " + how,
			"accept key " + fp + " for " + id} {
			if !strings.Contains(out, want) {
				t.Errorf("-test output lacks %q:\n%s", want, out)
			}
		}
		if got, err := os.ReadFile(pending); err != nil || string(got) != keyLine {
			t.Fatalf("pending key %q (%v), want %q", got, err, keyLine)
		}
	}
	t.Logf("-test before acceptance:\n%s", out)

	if out, err := run("fleet", "enroll", "accept", "-pending", e.pending, "-keys", e.keys, "-account", e.probe.Name, "-fingerprint", fp, id); err != nil {
		t.Fatalf("accept: %v\n%s", err, out)
	}
	out, err = run("upload", "-config", cfgPath, "-state", state, "-test")
	if err != nil || !strings.Contains(out, "upload test passed") || strings.Contains(out, "enrol") {
		t.Fatalf("-test after acceptance: %v\n%s", err, out)
	}
	if _, err := os.Stat(pending); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("an accepted probe's test enrolled again: %v", err)
	}
}

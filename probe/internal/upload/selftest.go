package upload

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"golang.org/x/crypto/ssh"
)

// Step is one reported step of SelfTest.
type Step struct {
	Name   string // what was tried
	Detail string // what was found, on success
	Err    error  // nil on success
}

// SelfTest checks the configuration against the server for the installer:
// connect, host key, login, remote directory, then writes a small test file
// as upload would (.part, rename, size check), reads it back and deletes
// it. Every step is passed to report as it completes; the first failure
// ends the test and is returned. id is the probe's ("" without one): where
// its account refuses the probe's own key and the image names an
// enrolment account, the test enrols the key as each health report does
// (a step naming its fingerprint, for the installer to read to the
// provider) and fails with ErrNotEnrolled.
func SelfTest(ctx context.Context, cfg Config, stateDir, id string, report func(Step)) error {
	if err := cfg.Validate(); err != nil {
		report(Step{Name: "check configuration", Err: err})
		return err
	}
	step := func(name, detail string, err error) error {
		report(Step{Name: name, Detail: detail, Err: err})
		return err
	}
	keyPath := cfg.KeyFile
	if keyPath == "" {
		keyPath = filepath.Join(stateDir, KeyFileName)
	}
	signer, pub, err := LoadOrCreateKey(keyPath)
	if err != nil {
		return step("load SSH key", "", err)
	}
	step("load SSH key", pub, nil)
	addr, _ := cfg.address()
	c, at, err := dial(ctx, cfg, signer)
	if err != nil {
		switch at {
		case stepTCP:
			return step("connect to "+addr, "", err)
		case stepHandshake:
			step("connect to "+addr, "ok", nil)
			step("check host key and log in as "+cfg.User, "", err)
			if id == "" || !cfg.enrolls(err) {
				return err
			}
			return selfEnroll(ctx, cfg, id, pub, err, step)
		default:
			step("connect to "+addr, "ok", nil)
			step("check host key and log in as "+cfg.User, "ok", nil)
			return step("start SFTP", "", err)
		}
	}
	defer c.Close()
	pin, _ := parseHostKeyPin(cfg.HostKey)
	step("connect to "+addr, "ok", nil)
	step("check host key and log in as "+cfg.User, "host key "+pin.fingerprint+" matches, "+cfg.Auth+" accepted", nil)

	st, err := c.sftp.Stat(cfg.RemoteDir)
	if err == nil && !st.IsDir() {
		err = fmt.Errorf("%s is not a directory", cfg.RemoteDir)
	}
	if err != nil {
		return step("find remote_dir "+cfg.RemoteDir, "", err)
	}
	step("find remote_dir "+cfg.RemoteDir, "ok", nil)

	// The test file goes through the same code as a saved window, from a
	// scratch queue, so the test proves what a real upload needs.
	scratch, err := os.MkdirTemp("", "presscap-upload-test-")
	if err != nil {
		return step("create local test file", "", err)
	}
	defer os.RemoveAll(scratch)
	var rnd [8]byte
	rand.Read(rnd[:])
	name := ".presscap-test-" + hex.EncodeToString(rnd[:]) + ".txt"
	content := []byte("presscap upload test " + hex.EncodeToString(rnd[:]) + "\n")
	if err := os.WriteFile(filepath.Join(scratch, name), content, 0o644); err != nil {
		return step("create local test file", "", err)
	}
	remote := path.Join(cfg.RemoteDir, name)
	// Recorded like a queue file's .part, so that if the test is cut the
	// next upload run removes the test's .part.
	parts := newPartJournal(stateDir, func(format string, args ...any) {
		report(Step{Name: "record the test file's .part in " + filepath.Join(stateDir, partsDir), Err: fmt.Errorf(format, args...)})
	})
	_, err = uploadFile(ctx, c, cfg, scratch, name, func(string) error { return nil }, parts, nil)
	if err != nil {
		return step("write "+remote+".part, rename to "+remote+", check size", "", err)
	}
	step("write "+remote+".part, rename to "+remote+", check size", fmt.Sprintf("%d bytes", len(content)), nil)

	err = func() error {
		f, err := c.sftp.Open(remote)
		if err != nil {
			return err
		}
		defer f.Close()
		got, err := io.ReadAll(f)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, content) {
			return fmt.Errorf("read back %q, wrote %q", got, content)
		}
		return nil
	}()
	if err != nil {
		c.sftp.Remove(remote)
		return step("read back "+remote, "", err)
	}
	step("read back "+remote, "identical", nil)
	if err := c.sftp.Remove(remote); err != nil {
		return step("delete "+remote, "", err)
	}
	return step("delete "+remote, "ok", nil)
}

// selfEnroll writes the key line pub that the probe's account refused
// (login) to fleet/enroll/<id>.pub as the enrolment account and says
// which key the provider is to accept.
func selfEnroll(ctx context.Context, cfg Config, id, pub string, login error, step func(name, detail string, err error) error) error {
	name := "enrol: write the public key to " + cfg.EnrollPath(id) + " as " + cfg.EnrollUser
	written, err := enroll(ctx, cfg, id, pub, nil)
	if err != nil {
		return step(name, "", err)
	}
	detail := "written"
	if !written {
		detail = "there already"
	}
	if k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pub)); err == nil {
		detail += "; ask the provider to accept key " + ssh.FingerprintSHA256(k) + " for " + id + ", then test again"
	}
	step(name, detail, nil)
	return &ErrNotEnrolled{Path: cfg.EnrollPath(id), Err: login}
}

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
// ends the test and is returned.
func SelfTest(ctx context.Context, cfg Config, stateDir string, report func(Step)) error {
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
			return step("check host key and log in as "+cfg.User, "", err)
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

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/presscap/presscap/probe/internal/devicepw"
	"github.com/presscap/presscap/probe/internal/fleet"
	"github.com/presscap/presscap/probe/internal/identity"
)

// runFleetPassword prints one probe's device password from its report:
// in clear from an account of its own, or opened with the provider's key
// where the probes share one (upload.password_recipient). The output is a
// password file for `make update PASSWORD_FILE=`.
func runFleetPassword(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("fleet password", e)
	keyFile := fs.String("password-key", "", "the provider's private `FILE` from `probe fleet password-key`, for a sealed password")
	src := fleetSourceFlags(fs)
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usageError{err: errors.New("fleet password: want DIR|sftp://USER@HOST[:PORT]/REMOTE_DIR and a probe ID")}
	}
	dir, done, err := src.local(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	defer done()
	id := fs.Arg(1)
	if err := identity.Check(id); err != nil {
		return fmt.Errorf("fleet password: %w", err)
	}
	p := filepath.Join(dir, filepath.FromSlash(fleet.FleetStatusDir), id+".json")
	if _, err := os.Stat(p); err != nil {
		p = filepath.Join(dir, id+".json") // dir is the status directory
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("fleet password: no report of %s: %w", id, err)
	}
	r, err := fleet.Parse(b)
	if err != nil {
		return fmt.Errorf("fleet password: %s: %w", p, err)
	}
	pw := r.DevicePassword
	switch {
	case r.DevicePasswordSealed != "" && *keyFile == "":
		return fmt.Errorf("fleet password: the report of %s holds the password sealed: give -password-key", id)
	case r.DevicePasswordSealed != "":
		if pw, err = devicepw.Open(r.DevicePasswordSealed, *keyFile); err != nil {
			return fmt.Errorf("fleet password: %s: %w", id, err)
		}
	case pw == "":
		return fmt.Errorf("fleet password: the report of %s holds no password (upload off, or not on gokrazy)", id)
	}
	_, err = fmt.Fprintln(e.stdout, pw)
	return err
}

// runFleetPasswordKey makes the provider's key pair for shared accounts:
// the private key in FILE, the public key (for the image's
// upload.password_recipient) on stdout.
func runFleetPasswordKey(_ context.Context, e env, args []string) error {
	fs := newFlagSet("fleet password-key", e)
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{err: errors.New("fleet password-key: want the private key FILE to create")}
	}
	pub, err := devicepw.GenerateKey(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("fleet password-key: %w", err)
	}
	_, err = fmt.Fprintln(e.stdout, pub)
	return err
}

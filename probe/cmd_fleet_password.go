package main

import (
	"context"
	"fmt"

	"github.com/presscap/presscap/probe/internal/devicepw"
	"github.com/presscap/presscap/probe/internal/fleet"
)

// runFleetPassword prints one probe's device password from its report:
// in clear from an account of its own, or opened with the provider's key
// where the probes share one (upload.password_recipient). The output is a
// password file for `make update PASSWORD_FILE=`.
func runFleetPassword(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("fleet password", e)
	keyFile := fs.String("password-key", "", "the provider's private `FILE` from `probe fleet password-key`, for a sealed password")
	src := fleetSourceFlags(fs)
	if err := parseArgsN(fs, args, 2, "DIR|sftp://USER@HOST[:PORT]/REMOTE_DIR and a probe ID"); err != nil {
		return err
	}
	dir, done, err := src.local(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	defer done()
	id := fs.Arg(1)
	r, err := fleet.ReadReport(dir, id)
	if err != nil {
		return fmt.Errorf("fleet password: %w", err)
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
	if err := parseArgsN(fs, args, 1, "the private key FILE to create"); err != nil {
		return err
	}
	pub, err := devicepw.GenerateKey(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("fleet password-key: %w", err)
	}
	_, err = fmt.Fprintln(e.stdout, pub)
	return err
}

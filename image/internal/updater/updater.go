// Package updater pushes a new build to a running gokrazy device over its
// update protocol (the server side is github.com/gokrazy/gokrazy's
// update.go): PUT the inactive root, the boot FAT and optionally the MBR,
// each acknowledged with a digest of what the device wrote; POST
// /update/switch to point cmdline.txt at the new root; POST /reboot; then
// poll GET / until the device reports the new build timestamp.
package updater

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/presscap/presscap/image/internal/eeprom"
	"github.com/presscap/presscap/internal/gokrazyhttp"
)

// Target is a device's update endpoint.
type Target struct {
	// BaseURL is e.g. "http://presscap:80" or "http://127.0.0.1:18080".
	BaseURL  string
	User     string // "gokrazy"
	Password string
	Client   *http.Client
	// After, if set, is where the device answers once it runs the new
	// build: an update that brings HTTPS to a device still serving plain
	// HTTP waits for it there.
	After *Target
	// poll is the pause between Wait's status requests; 0 is a second
	// (the tests that wait for a device that never comes back shorten it).
	poll time.Duration
}

// ErrUnauthorized is wrapped by the error for a request the device
// refused for its password.
var ErrUnauthorized = gokrazyhttp.ErrUnauthorized

// Features are what GET /update/features announced.
type Features = gokrazyhttp.Features

// api is the protocol client for t.
func (t *Target) api() *gokrazyhttp.Client {
	return &gokrazyhttp.Client{BaseURL: t.BaseURL, User: t.User, Password: t.Password, HTTP: t.Client}
}

// GetFeatures asks the device what it supports.
func (t *Target) GetFeatures(ctx context.Context) (Features, error) {
	return t.api().GetFeatures(ctx)
}

// Status is the part of GET / (JSON) the updater reads.
type Status struct {
	BuildTimestamp string
	Hostname       string
	Model          string
	// EEPROM is the Raspberry Pi EEPROM the device last flashed (from its
	// boot FAT's .sig files), nil if it reports none.
	EEPROM *eeprom.Version
}

// GetStatus returns the device's status.
func (t *Target) GetStatus(ctx context.Context) (Status, error) {
	resp, err := t.api().Do(ctx, http.MethodGet, "/", nil, http.Header{"Accept": {"application/json"}})
	if err != nil {
		return Status{}, err
	}
	defer resp.Body.Close()
	var s Status
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&s); err != nil {
		return Status{}, fmt.Errorf("GET /: decoding status: %w", err)
	}
	return s, nil
}

// Payload is one update: a root squashfs, a boot FAT and optionally an MBR.
type Payload struct {
	Root, Boot io.Reader
	MBR        io.Reader // nil: leave the partition table alone
	// BuildTimestamp is what the new init reports; Wait polls for it.
	BuildTimestamp string
}

// Progress receives one line per step (may be nil).
type Progress func(format string, args ...any)

// Update performs root, boot, [mbr], switch, reboot and waits up to
// waitFor for the device to come back with the new build.
func (t *Target) Update(ctx context.Context, p Payload, waitFor time.Duration, log Progress) error {
	if log == nil {
		log = func(string, ...any) {}
	}
	f, err := t.GetFeatures(ctx)
	if err != nil {
		return fmt.Errorf("update features: %w", err)
	}
	if !f.PARTUUID || !f.GPT {
		return fmt.Errorf("device features %q: need partuuid and gpt (a gokrazy installation with a GPT)", f.Raw)
	}
	before, err := t.GetStatus(ctx)
	if err != nil {
		return err
	}
	log("device %s runs build %s; features %s", before.Hostname, before.BuildTimestamp, f.Raw)
	if before.BuildTimestamp == p.BuildTimestamp {
		return fmt.Errorf("device already runs build %s", p.BuildTimestamp)
	}
	steps := []struct {
		path string
		r    io.Reader
	}{{"/update/root", p.Root}, {"/update/boot", p.Boot}}
	if p.MBR != nil {
		steps = append(steps, struct {
			path string
			r    io.Reader
		}{"/update/mbr", p.MBR})
	}
	for _, s := range steps {
		start := time.Now()
		n, err := t.api().Put(ctx, s.path, s.r, f.UpdateHash)
		if err != nil {
			return err
		}
		log("%s: %d bytes in %s, digest verified", s.path, n, time.Since(start).Round(time.Millisecond))
	}
	if err := t.api().Post(ctx, "/update/switch"); err != nil {
		return err
	}
	log("switched to the updated root partition")
	if err := t.api().Reboot(ctx); err != nil {
		return err
	}
	if t.After != nil {
		log("rebooting; waiting for build %s at %s", p.BuildTimestamp, t.After.BaseURL)
		return t.After.Wait(ctx, p.BuildTimestamp, waitFor)
	}
	log("rebooting; waiting for build %s", p.BuildTimestamp)
	return t.Wait(ctx, p.BuildTimestamp, waitFor)
}

// Wait polls GET / until the device reports build, or the time is up.
func (t *Target) Wait(ctx context.Context, build string, waitFor time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	var last error
	for {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := t.GetStatus(rctx)
		rcancel()
		if err == nil && s.BuildTimestamp == build {
			return nil
		}
		switch {
		case err == nil:
			last = fmt.Errorf("device still reports build %s", s.BuildTimestamp)
		case ctx.Err() == nil || last == nil:
			// A request cut short by the overall deadline says nothing
			// about the device; keep what the previous one learned.
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for build %s: %w (last: %w)", build, ctx.Err(), last)
		case <-time.After(cmp.Or(t.poll, time.Second)):
		}
	}
}

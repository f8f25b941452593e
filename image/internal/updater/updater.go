// Package updater pushes a new build to a running gokrazy device over its
// update protocol (the server side is github.com/gokrazy/gokrazy's
// update.go): PUT the inactive root, the boot FAT and optionally the MBR,
// each acknowledged with a digest of what the device wrote; POST
// /update/switch to point cmdline.txt at the new root; POST /reboot; then
// poll GET / until the device reports the new build timestamp.
package updater

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/presscap/presscap/image/internal/eeprom"
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
}

// ErrUnauthorized is wrapped by the error for a request the device
// refused for its password.
var ErrUnauthorized = errors.New("the device refused the password")

// Features are what GET /update/features announced.
type Features struct {
	Raw        string
	PARTUUID   bool
	UpdateHash bool // the device hashes with CRC-32 when asked
	GPT        bool
}

func (t *Target) client() *http.Client {
	if t.Client != nil {
		return t.Client
	}
	return http.DefaultClient
}

func (t *Target) url(p string) (string, error) {
	u, err := url.Parse(strings.TrimSuffix(t.BaseURL, "/") + p)
	if err != nil {
		return "", fmt.Errorf("update target %q: %w", t.BaseURL, err)
	}
	return u.String(), nil
}

func (t *Target) do(ctx context.Context, method, p string, body io.Reader, hdr http.Header) (*http.Response, error) {
	u, err := t.url(p)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	user := t.User
	if user == "" {
		user = "gokrazy"
	}
	req.SetBasicAuth(user, t.Password)
	resp, err := t.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, p, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized {
			return nil, fmt.Errorf("%s %s: %s: %w", method, p, resp.Status, ErrUnauthorized)
		}
		if loc := resp.Header.Get("Location"); loc != "" {
			// gokrazy's HTTP port redirects to its HTTPS port when the
			// image has a web certificate.
			return nil, fmt.Errorf("%s %s: %s to %s (not followed: a redirect to https means the image has TLS, set Update.UseTLS or CertPEM in the instance)", method, p, resp.Status, loc)
		}
		return nil, fmt.Errorf("%s %s: %s: %s", method, p, resp.Status, strings.TrimSpace(string(b)))
	}
	return resp, nil
}

// GetFeatures asks the device what it supports.
func (t *Target) GetFeatures(ctx context.Context) (Features, error) {
	resp, err := t.do(ctx, http.MethodGet, "/update/features", nil, nil)
	if err != nil {
		return Features{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return Features{}, err
	}
	f := Features{Raw: strings.TrimSpace(string(b))}
	for _, w := range strings.Split(f.Raw, ",") {
		switch strings.TrimSpace(w) {
		case "partuuid":
			f.PARTUUID = true
		case "updatehash":
			f.UpdateHash = true
		case "gpt":
			f.GPT = true
		}
	}
	return f, nil
}

// put streams body to an /update/ endpoint and checks the digest the
// device answers against the one computed while sending.
func (t *Target) put(ctx context.Context, p string, body io.Reader, crc bool) (int64, error) {
	var h hash.Hash = sha256.New()
	hdr := http.Header{}
	if crc {
		h = crc32.NewIEEE()
		hdr.Set("X-Gokrazy-Update-Hash", "crc32")
	}
	cr := &countingReader{r: io.TeeReader(body, h)}
	resp, err := t.do(ctx, http.MethodPut, p, cr, hdr)
	if err != nil {
		return cr.n, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return cr.n, fmt.Errorf("PUT %s: reading the digest: %w", p, err)
	}
	got := strings.TrimSpace(string(b))
	want := hex.EncodeToString(h.Sum(nil))
	if got != want {
		return cr.n, fmt.Errorf("PUT %s: device wrote digest %q, sent %q (%d bytes): the transfer was damaged", p, got, want, cr.n)
	}
	return cr.n, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
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
	resp, err := t.do(ctx, http.MethodGet, "/", nil, http.Header{"Accept": {"application/json"}})
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
		n, err := t.put(ctx, s.path, s.r, f.UpdateHash)
		if err != nil {
			return err
		}
		log("%s: %d bytes in %s, digest verified", s.path, n, time.Since(start).Round(time.Millisecond))
	}
	if err := t.post(ctx, "/update/switch"); err != nil {
		return err
	}
	log("switched to the updated root partition")
	// gokrazy answers /reboot before it kills the services; the
	// connection may drop while it does.
	if err := t.post(ctx, "/reboot"); err != nil && !isDisconnect(err) {
		return err
	}
	if t.After != nil {
		log("rebooting; waiting for build %s at %s", p.BuildTimestamp, t.After.BaseURL)
		return t.After.Wait(ctx, p.BuildTimestamp, waitFor)
	}
	log("rebooting; waiting for build %s", p.BuildTimestamp)
	return t.Wait(ctx, p.BuildTimestamp, waitFor)
}

func (t *Target) post(ctx context.Context, p string) error {
	resp, err := t.do(ctx, http.MethodPost, p, bytes.NewReader(nil), nil)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

func isDisconnect(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "EOF")
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
		case <-time.After(time.Second):
		}
	}
}

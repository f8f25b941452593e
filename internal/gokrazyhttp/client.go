// Package gokrazyhttp speaks gokrazy's update protocol (the device side is
// github.com/gokrazy/gokrazy's update.go): PUT a partition's bytes and
// check the digest the device answers, POST the switch, test boot and
// reboot. The image tool pushes over it (image/internal/updater), the
// probe installs a pulled release through its own device's endpoints.
package gokrazyhttp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client is one device's HTTP API.
type Client struct {
	// BaseURL is e.g. "http://presscap:80" or "https://127.0.0.1:443".
	BaseURL  string
	User     string // default "gokrazy"
	Password string
	HTTP     *http.Client // default http.DefaultClient
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

func (c *Client) client() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// Do sends one request with the device's Basic auth; any answer but 200
// is an error that says what the device said.
func (c *Client) Do(ctx context.Context, method, p string, body io.Reader, hdr http.Header) (*http.Response, error) {
	u, err := url.Parse(strings.TrimSuffix(c.BaseURL, "/") + p)
	if err != nil {
		return nil, fmt.Errorf("update target %q: %w", c.BaseURL, err)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	user := c.User
	if user == "" {
		user = "gokrazy"
	}
	req.SetBasicAuth(user, c.Password)
	resp, err := c.client().Do(req)
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
func (c *Client) GetFeatures(ctx context.Context) (Features, error) {
	resp, err := c.Do(ctx, http.MethodGet, "/update/features", nil, nil)
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

// Put streams body to an /update/ endpoint and checks the digest the
// device answers against the one computed while sending (CRC-32 when
// crc, which the device does when its features say updatehash).
func (c *Client) Put(ctx context.Context, p string, body io.Reader, crc bool) (int64, error) {
	var h hash.Hash = sha256.New()
	hdr := http.Header{}
	if crc {
		h = crc32.NewIEEE()
		hdr.Set("X-Gokrazy-Update-Hash", "crc32")
	}
	cr := &countingReader{r: io.TeeReader(body, h)}
	resp, err := c.Do(ctx, http.MethodPut, p, cr, hdr)
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

// Post sends an empty POST (/update/switch, /update/testboot, /reboot).
func (c *Client) Post(ctx context.Context, p string) error {
	resp, err := c.Do(ctx, http.MethodPost, p, bytes.NewReader(nil), nil)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// Reboot asks the device to reboot. gokrazy answers before it kills the
// services, and the connection may drop while it does: that is success.
func (c *Client) Reboot(ctx context.Context) error {
	if err := c.Post(ctx, "/reboot"); err != nil && !IsDisconnect(err) {
		return err
	}
	return nil
}

// IsDisconnect says err is the connection dropping, as it does when the
// device goes down for a reboot.
func IsDisconnect(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "EOF")
}

package upload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/presscap/presscap/internal/safefile"
	"github.com/presscap/presscap/probe/internal/filenames"
	"github.com/presscap/presscap/probe/internal/fleet"
)

// StatusPath is where the report of probe id goes on the server. Upload
// never sends a queue file below fleet/ (queue names have no slash).
func (c Config) StatusPath(id string) string {
	return path.Join(c.RemoteDir, fleet.FleetStatusDir, id+".json")
}

// labelFile keeps the label read last, so files made before the next
// connection carry it too.
const labelFile = "fleet-label.json"

type savedLabel struct {
	ID    string `json:"id"`
	Label string `json:"label"`
}

// SetID tells the uploader the probe's id (see package identity): it names
// the health report and picks this probe's label from fleet/labels.json at
// each connection. The label saved by an earlier run for the same id is
// in force at once.
func (u *Uploader) SetID(id string) {
	label := SavedLabel(u.stateDir, id)
	u.mu.Lock()
	u.fleetID, u.label = id, label
	u.mu.Unlock()
}

// SavedLabel is the label last read for probe id by an uploader with this
// state dir, "" for none: the service names its files with it from start.
func SavedLabel(stateDir, id string) string {
	var s savedLabel
	b, err := os.ReadFile(filepath.Join(stateDir, labelFile))
	if err != nil || json.Unmarshal(b, &s) != nil || s.ID != id || filenames.CheckLabel(s.Label) != nil {
		return ""
	}
	return s.Label
}

// Label is the provider's label for this probe as last read from
// fleet/labels.json, "" for none.
func (u *Uploader) Label() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.label
}

// readLabel looks this probe up in fleet/labels.json on the server. No
// file or no entry clears the label; a file that cannot be read or parsed
// keeps the label in force (logged), since one bad edit by the provider
// must not rename the probe's files.
func (u *Uploader) readLabel(c *conn) {
	u.mu.Lock()
	id, old := u.fleetID, u.label
	u.mu.Unlock()
	if id == "" {
		return
	}
	p := path.Join(u.cfg.RemoteDir, fleet.LabelsPath)
	label, err := func() (string, error) {
		f, err := c.sftp.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, 1<<20))
		if err != nil {
			return "", err
		}
		m, err := fleet.ParseLabels(b)
		return m[id], err
	}()
	if err != nil {
		u.logf("upload: %s on the server: %v (label %q kept)", p, err, old)
		return
	}
	if label == old {
		return
	}
	u.mu.Lock()
	u.label = label
	u.mu.Unlock()
	u.logf("upload: %s labels this probe %q (was %q)", p, label, old)
	b, _ := json.Marshal(savedLabel{ID: id, Label: label})
	if err := safefile.WriteFile(filepath.Join(u.stateDir, labelFile), b, 0o644); err != nil {
		u.logf("upload: %v", err)
	}
}

// WriteStatus writes body as <remote_dir>/fleet/status/<id>.json over the
// upload's connection (same server, host key pin and login): to .part
// first, then renamed over the old report, so the provider never reads half
// of one. It creates the directories the provider did not, and reads the
// probe's label on the way.
func (u *Uploader) WriteStatus(ctx context.Context, id string, body []byte) error {
	if !u.cfg.Enabled {
		return fmt.Errorf("upload: not enabled, no server for the health report")
	}
	if id == "" || strings.ContainsAny(id, `/\`) || strings.HasPrefix(id, ".") {
		return fmt.Errorf("upload: %q is not a probe id usable as a file name", id)
	}
	c, err := u.dialOrEnroll(ctx, id)
	if err != nil {
		return err
	}
	defer c.Close()
	u.readLabel(c)
	if err := putSmall(c, u.cfg.StatusPath(id), body); err != nil {
		return err
	}
	u.readConfig(c, id)
	return nil
}

// MaxFleetConfig bounds a configuration file from the server: the
// image's is about 2 KiB.
const MaxFleetConfig = 64 << 10

// SetConfigReceiver has fn called at each health report's connection with
// the configuration the server offers this probe: fleet/config/<id>.json,
// else fleet/config/default.json, source "" and no body when neither
// exists. A file that cannot be read is logged and not passed on; one too
// large is passed on with its error.
func (u *Uploader) SetConfigReceiver(fn func(source string, body []byte, err error)) {
	u.mu.Lock()
	u.onConfig = fn
	u.mu.Unlock()
}

func (u *Uploader) readConfig(c *conn, id string) {
	u.mu.Lock()
	fn := u.onConfig
	u.mu.Unlock()
	if fn == nil {
		return
	}
	for _, name := range []string{id + ".json", fleet.DefaultConfigFile} {
		source := path.Join(fleet.ConfigDir, name)
		p := path.Join(u.cfg.RemoteDir, source)
		f, err := c.sftp.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			u.logf("upload: %s on the server: %v (configuration not read)", p, err)
			return
		}
		b, err := io.ReadAll(io.LimitReader(f, MaxFleetConfig+1))
		f.Close()
		if err != nil {
			u.logf("upload: %s on the server: %v (configuration not read)", p, err)
			return
		}
		if len(b) > MaxFleetConfig {
			fn(source, nil, fmt.Errorf("larger than %d bytes", MaxFleetConfig))
			return
		}
		fn(source, b, nil)
		return
	}
	fn("", nil, nil)
}

// putSmall writes a small file atomically: <final>.part, size check, rename.
func putSmall(c *conn, final string, body []byte) error {
	dir := path.Dir(final)
	if err := c.sftp.MkdirAll(dir); err != nil {
		return fmt.Errorf("create %s on the server: %w", dir, err)
	}
	part := final + ".part"
	f, err := c.sftp.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("create %s on the server: %w", part, err)
	}
	_, err = f.Write(body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = checkSize(c, part, int64(len(body)))
	}
	if err != nil {
		c.sftp.Remove(part)
		return fmt.Errorf("write %s on the server: %w", part, err)
	}
	return rename(c, part, final)
}

// maxFleetFile bounds what FetchFleet reads of one file: a report is a few
// KiB.
const maxFleetFile = 1 << 20

// FetchFleet copies <remote_dir>/fleet/status/*.json and
// fleet/labels.json from the server into dir/fleet/, keeping each file's
// time on the server (when the probe last reported), for `probe fleet
// sftp://...` on the provider's side. The key at keyFile must exist: it is
// never created here. Reports being written (.part) are left out.
func FetchFleet(ctx context.Context, cfg Config, keyFile, dir string) error {
	cfg.Enabled = true
	if err := cfg.Validate(); err != nil {
		return err
	}
	signer, err := readSigner(keyFile)
	if err != nil {
		return err
	}
	c, _, err := dial(ctx, cfg, signer)
	if err != nil {
		return err
	}
	defer c.Close()
	status := path.Join(cfg.RemoteDir, fleet.FleetStatusDir)
	local := filepath.Join(dir, filepath.FromSlash(fleet.FleetStatusDir))
	if err := os.MkdirAll(local, 0o755); err != nil {
		return err
	}
	entries, err := c.sftp.ReadDir(status)
	if err != nil {
		return fmt.Errorf("list %s on the server: %w", status, err)
	}
	for _, e := range entries {
		n := e.Name()
		if !e.Mode().IsRegular() || !strings.HasSuffix(n, ".json") || strings.HasPrefix(n, ".") || strings.ContainsAny(n, `/\`) {
			continue
		}
		if err := fetchOne(c, path.Join(status, n), filepath.Join(local, n)); err != nil {
			return err
		}
	}
	err = fetchOne(c, path.Join(cfg.RemoteDir, fleet.LabelsPath), filepath.Join(dir, filepath.FromSlash(fleet.LabelsPath)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func fetchOne(c *conn, remote, local string) error {
	f, err := c.sftp.Open(remote)
	if err != nil {
		return fmt.Errorf("open %s on the server: %w", remote, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s on the server: %w", remote, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFleetFile+1))
	if err != nil {
		return fmt.Errorf("read %s on the server: %w", remote, err)
	}
	if len(b) > maxFleetFile {
		return fmt.Errorf("%s on the server is larger than %d bytes", remote, maxFleetFile)
	}
	if err := os.WriteFile(local, b, 0o600); err != nil {
		return err
	}
	return os.Chtimes(local, st.ModTime(), st.ModTime())
}

// WithSFTP dials the server (same host key pin and login as the upload)
// and calls fn over the connection: the release channel's reads.
func (u *Uploader) WithSFTP(ctx context.Context, fn func(*sftp.Client) error) error {
	return u.WithSSH(ctx, func(_ *ssh.Client, c *sftp.Client) error { return fn(c) })
}

// WithSSH is WithSFTP with the SSH connection too, for the tunnel's
// remote forwards on the same pinned, logged-in connection. fn may hold it
// for long: only a silent server ends it (send keepalives).
func (u *Uploader) WithSSH(ctx context.Context, fn func(*ssh.Client, *sftp.Client) error) error {
	if !u.cfg.Enabled {
		return fmt.Errorf("upload: not enabled, no server")
	}
	c, _, err := dial(ctx, u.cfg, u.signer)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c.ssh, c.sftp)
}

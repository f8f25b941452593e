package upload

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"
)

// FleetDir is the provider's directory below remote_dir: fleet/status holds
// one health report per probe. Upload never sends a queue file there (queue
// names have no slash).
const FleetDir = "fleet"

// StatusPath is where the report of probe id goes on the server.
func (c Config) StatusPath(id string) string {
	return path.Join(c.RemoteDir, FleetDir, "status", id+".json")
}

// WriteStatus writes body as <remote_dir>/fleet/status/<id>.json over the
// upload's connection (same server, host key pin and login): to .part
// first, then renamed over the old report, so the provider never reads half
// of one. It creates the directories the provider did not.
func (u *Uploader) WriteStatus(ctx context.Context, id string, body []byte) error {
	if !u.cfg.Enabled {
		return fmt.Errorf("upload: not enabled, no server for the health report")
	}
	if id == "" || strings.ContainsAny(id, `/\`) || strings.HasPrefix(id, ".") {
		return fmt.Errorf("upload: %q is not a probe id usable as a file name", id)
	}
	c, _, err := dial(ctx, u.cfg, u.signer)
	if err != nil {
		return err
	}
	defer c.Close()
	return putSmall(c, u.cfg.StatusPath(id), body)
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

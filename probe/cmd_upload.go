package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/internal/identity"
	"github.com/presscap/presscap/probe/internal/upload"
)

// runUpload is `probe upload -config FILE (-now | -test | -key)`: the
// installer's and the provider's hands-on tools for the upload.
func runUpload(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("upload", e)
	cfgPath := configFlag(fs)
	queue := fs.String("queue", "", "queue directory (default: storage.mount_point/storage.queue_dir of the configuration)")
	state := fs.String("state", "", "state directory holding the SSH key (default: storage.state_dir of the configuration, as the service uses)")
	now := fs.Bool("now", false, "upload the queue now, ignoring the schedule")
	test := fs.Bool("test", false, "write, read back and delete a small test file on the server, reporting each step")
	key := fs.Bool("key", false, "print the probe's SSH public key (created if missing) for the server's authorized_keys")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	n := 0
	for _, b := range []bool{*now, *test, *key} {
		if b {
			n++
		}
	}
	if n != 1 {
		return errors.New("upload: give exactly one of -now, -test, -key")
	}
	path, err := config.Find(*cfgPath, os.Getenv)
	if err != nil {
		return err
	}
	if path == "" {
		return errors.New("upload: no configuration file found; give -config FILE")
	}
	full, err := config.Load(path)
	if err != nil {
		return err
	}
	cfg := full.Upload
	root := e.sysRoot
	if root == "" {
		root = "/"
	}
	id, _ := identity.Read(root) // without an id, the configured and system names
	if id.Value != "" {
		cfg = cfg.ForProbe(id.Value) // as the service logs in
	}
	if *state == "" {
		*state = full.Storage.StateDir
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if *key {
		keyPath := cfg.KeyFile
		if keyPath == "" {
			keyPath = filepath.Join(*state, upload.KeyFileName)
		}
		_, pub, err := upload.LoadOrCreateKey(keyPath)
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, pub)
		return nil
	}
	if !cfg.Enabled {
		return fmt.Errorf("%s: upload.enable is false; set it and the server fields first", path)
	}
	if *test {
		failed := false
		err := upload.SelfTest(ctx, cfg, *state, id.Value, func(s upload.Step) {
			if s.Err != nil {
				failed = true
				fmt.Fprintf(e.stdout, "FAIL %s: %v\n", s.Name, s.Err)
				return
			}
			fmt.Fprintf(e.stdout, "ok   %s: %s\n", s.Name, s.Detail)
		})
		if err != nil || failed {
			return fmt.Errorf("upload test failed: %w", err)
		}
		fmt.Fprintln(e.stdout, "upload test passed")
		return nil
	}
	dir := *queue
	if dir == "" {
		dir = filepath.Join(full.Storage.MountPoint, full.Storage.QueueDir)
	}
	logf := func(format string, a ...any) { fmt.Fprintf(e.stderr, format+"\n", a...) }
	u, err := upload.New(cfg, dir, *state, nil, nil, logf)
	if err != nil {
		return err
	}
	// As the service: only files with this probe's names are sent.
	u.SetHosts(upload.FileHosts("", full.Hostname, id.Value)...)
	before := u.Status()
	fmt.Fprintf(e.stdout, "queue %s: %d files, %d bytes\n", dir, before.Files, before.Bytes)
	err = u.UploadNow(ctx)
	st := u.Status()
	fmt.Fprintf(e.stdout, "%s\n", st.LastResult)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	if st.Files > 0 {
		return fmt.Errorf("upload: %d files left in the queue", st.Files)
	}
	return nil
}

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/sys/unix"

	"github.com/presscap/presscap/internal/gokrazyhttp"
	"github.com/presscap/presscap/internal/release"
	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/internal/clock"
	"github.com/presscap/presscap/probe/internal/fleet"
	"github.com/presscap/presscap/probe/internal/fleet/update"
	"github.com/presscap/presscap/probe/internal/service"
	"github.com/presscap/presscap/probe/internal/status"
	"github.com/presscap/presscap/probe/internal/upload"
)

// updateDir holds the update's record and downloads on /perm, at a fixed
// place: a new build whose configuration is broken must still find the
// record that judges it.
func updateDir(root string) string { return filepath.Join(root, "perm", "presscap", "update") }

// updates is the release channel inside probe run (issue 14): the guard
// of a build on trial, from the probe's first moment, and the runner that
// installs releases once the service runs.
type updates struct {
	root, running string
	logf          func(string, ...any)
	svc           atomic.Pointer[service.Service]
	runner        atomic.Pointer[update.Runner]
	guard         *update.Guard
	// onTrial: this build is on trial and its guard's verdict is to come.
	onTrial atomic.Bool
}

// startUpdates starts the guard when this is a gokrazy image (it knows its
// build); it runs before the flags and the configuration are read, so a
// build that cannot start its service is judged too. What does not wait
// (a verdict past the deadline, with its reboot) is done before it
// returns: a probe that exits at start would cut a goroutine short.
func startUpdates(ctx context.Context, root string, logf func(string, ...any)) *updates {
	u := &updates{root: root, running: os.Getenv("PRESSCAP_IMAGE_BUILD"), logf: logf}
	if u.running == "" {
		return u
	}
	if _, err := os.Stat(filepath.Join(root, "etc/gokr-pw.txt")); err != nil {
		return u // not on gokrazy: no device to update
	}
	pw := config.DefaultConfig().Status.PasswordFiles
	g := &update.Guard{
		Store: update.Store{Dir: updateDir(root)}, Running: u.running, BootID: clock.BootIDAt(root),
		Uptime: func() (time.Duration, error) { return fleet.Uptime(root) },
		Health: u.health, Logf: logf,
		Device: lazyDevice{root: root, pw: pw},
		Reboot: func(ctx context.Context) error { return rebootDevice(ctx, root, pw, logf) },
	}
	u.guard = g
	watch, err := g.Begin(ctx)
	if err != nil {
		logf("%v", err)
	}
	if watch == nil {
		return u
	}
	u.onTrial.Store(true)
	go func() {
		err := watch(ctx)
		if err == nil {
			u.onTrial.Store(false)
		} else if ctx.Err() == nil {
			logf("%v", err)
		}
	}()
	return u
}

// stopped is the end of probe run, with its error: the guard of a build on
// trial records why its probe stopped, and a stop gokrazy would not
// restart (exit status 0) becomes one it does, so that the build's next
// start is judged (past the deadline, it reboots into the old build).
func (u *updates) stopped(ctx context.Context, err error) error {
	if !u.onTrial.Load() || ctx.Err() != nil {
		return err
	}
	if err == nil || errors.Is(err, flag.ErrHelp) {
		err = errors.New("presscap: stopped while on trial (gokrazy restarts only a service that fails)")
	}
	u.guard.Stopped(err)
	return err
}

// health is what this build shows now, for the guard and the trial record.
func (u *updates) health() update.Health {
	var h update.Health
	if s := u.svc.Load(); s != nil {
		snap := s.Snapshot()
		h.Disk = snap.Storage.Root != ""
		var written uint64
		for _, l := range snap.Links {
			written += l.Written
		}
		h.Recording = snap.Ring != nil && written > 0
	}
	if r := u.runner.Load(); r != nil {
		h.Server = r.Reached()
	}
	return h
}

// serviceState is what the reboot policy asks: a window open or being
// saved, the last press.
func serviceState(s *service.Service) update.State {
	snap := s.Snapshot()
	st := update.State{Busy: len(snap.Pending) > 0 || (s.Storage().Busy != nil && s.Storage().Busy()), Unsynced: !snap.ClockSynced}
	for _, p := range snap.Presses {
		if p.Time.After(st.LastPress) {
			st.LastPress = p.Time
		}
	}
	return st
}

// run checks the release channel until ctx ends; its report goes into the
// health report. It needs the upload (the server), trusted keys and the
// image's build and instance.
func (u *updates) run(ctx context.Context, c config.Config, svc *service.Service, fl fleetSetup) func() *fleet.Update {
	u.svc.Store(svc)
	instance := os.Getenv("PRESSCAP_INSTANCE")
	switch {
	case u.running == "" || instance == "" || !c.Upload.Enabled:
		return nil
	case len(c.Release.PublicKeys) == 0:
		u.logf("update: no release.public_keys: the release channel is not read")
		return nil
	}
	keys, err := release.ParsePublicKeys(c.Release.PublicKeys)
	if err != nil { // refused by Validate
		u.logf("update: %v", err)
		return nil
	}
	from, to, err := update.ParseWindow(c.Release.Window)
	if err != nil { // refused by Validate
		u.logf("update: %v", err)
		return nil
	}
	loc, _ := c.Clock.Location()
	if err := os.MkdirAll(c.Storage.StateDir, 0o700); err != nil {
		u.logf("update: release channel not read: storage.state_dir: %v", err)
		return nil
	}
	up, err := fleetUploader(c, fl, u.logf)
	if err != nil {
		u.logf("update: release channel not read: %v", err)
		return nil
	}
	dir := updateDir(u.root)
	r := &update.Runner{
		Puller: update.Puller{Dir: update.ReleaseDir(c.Upload.RemoteDir, c.Release.Channel), Local: filepath.Join(dir, "release"),
			Keys: keys, Instance: instance, Running: u.running},
		Connect: func(ctx context.Context, fn func(update.Remote) error) error {
			return up.WithSFTP(ctx, func(sc *sftp.Client) error { return fn(sftpRemote{sc}) })
		},
		Channel: c.Release.Channel,
		Policy:  update.Policy{QuietAfterPress: c.Release.QuietAfterPress.D(), WindowFrom: from, WindowTo: to, Location: loc},
		Service: func() update.State { return serviceState(svc) },
		Health:  u.health,
		Store:   update.Store{Dir: dir}, BootID: clock.BootIDAt(u.root),
		TestBoot:      func() bool { return inTestBoot(u.root) },
		ConfirmWithin: c.Release.ConfirmWithin.D(),
		// The first check soon after start: a build on trial needs the
		// server's answer, and a probe just plugged in its release.
		First: 10 * time.Second, Interval: c.Release.CheckInterval.D(),
		Logf: u.logf,
	}
	u.runner.Store(r)
	go func() {
		dev, err := waitLocalDevice(ctx, u.root, rooted(u.root, c.Status.PasswordFiles), 5*time.Second, u.logf)
		if err != nil {
			return
		}
		r.Device = dev
		if err := r.Run(ctx); err != nil && ctx.Err() == nil {
			u.logf("update: %v", err)
		}
	}()
	return r.Report
}

// sftpRemote opens the channel's files over the upload's SFTP client.
type sftpRemote struct{ c *sftp.Client }

func (r sftpRemote) Open(p string) (update.File, error) { return r.c.Open(p) }

// fleetUploader is an uploader of its own for the fleet's connections
// (reports, releases): it logs like the service's, but the public key
// only once, from the service's.
func fleetUploader(c config.Config, fl fleetSetup, logf func(string, ...any)) (*upload.Uploader, error) {
	quiet := func(format string, args ...any) {
		if !strings.HasPrefix(format, "upload: public key") {
			logf(format, args...)
		}
	}
	u, err := upload.New(c.Upload, "", c.Storage.StateDir, nil, nil, quiet)
	if err != nil {
		return nil, err
	}
	u.SetID(fl.id.Value)
	return u, nil
}

func rooted(root string, paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Join(root, p)
	}
	return out
}

// inTestBoot says the kernel was started for gokrazy's test boot: its
// command line (unlike cmdline.txt, rewritten at once) keeps the flag.
func inTestBoot(root string) bool {
	b, _ := os.ReadFile(filepath.Join(root, "proc/cmdline"))
	return strings.Contains(string(b), "gokrazy.try_boot_inactive=1")
}

// localDevice is this device's gokrazy update API on the loopback: HTTPS
// pinned to the image's own certificate when it has one (gokrazy's HTTP
// port then only redirects), with the first password gokrazy accepts.
// /perm/gokr-pw.txt is tried first but counts only from the boot after it
// was made, so the image's password is tried next.
func localDevice(ctx context.Context, root string, pwFiles []string) (*gokrazyhttp.Client, error) {
	base, client, err := localEndpoint(root)
	if err != nil {
		return nil, err
	}
	var last error = errors.New("no password file readable")
	seen := map[string]bool{}
	for _, f := range pwFiles {
		pw := status.Auth{PasswordFiles: []string{f}}.Password()
		if pw == "" || seen[pw] {
			continue
		}
		seen[pw] = true
		dev := &gokrazyhttp.Client{BaseURL: base, Password: pw, HTTP: client}
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := dev.GetFeatures(fctx)
		cancel()
		if err == nil {
			return dev, nil
		}
		last = err
	}
	return nil, last
}

// waitLocalDevice asks localDevice until it answers or ctx ends, waiting
// first, then twice as long each time up to 5 minutes: gokrazy's HTTP may
// be slow at boot, and a build on trial that never reads its channel
// fails its trial for want of "server reached".
func waitLocalDevice(ctx context.Context, root string, pwFiles []string, first time.Duration, logf func(string, ...any)) (*gokrazyhttp.Client, error) {
	wait, last := first, ""
	for {
		dev, err := localDevice(ctx, root, pwFiles)
		if err == nil {
			if last != "" {
				logf("update: the device's own update endpoint answers")
			}
			return dev, nil
		}
		if err.Error() != last {
			logf("update: the device's own update endpoint: %v (asking again in %v; no release is read until it answers)", err, wait)
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Minute)
	}
}

func localEndpoint(root string) (string, *http.Client, error) {
	port := func(name, def string) string {
		for _, d := range []string{"perm", "etc"} {
			if b, err := os.ReadFile(filepath.Join(root, d, name)); err == nil {
				if p := strings.TrimSpace(string(b)); p != "" {
					return p
				}
			}
		}
		return def
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	certPEM, err := os.ReadFile(filepath.Join(root, "etc/ssl/gokrazy-web.pem"))
	if errors.Is(err, os.ErrNotExist) {
		return "http://127.0.0.1:" + port("http-port.txt", "80"), &http.Client{CheckRedirect: noRedirect}, nil
	}
	if err != nil {
		return "", nil, err
	}
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		return "", nil, fmt.Errorf("etc/ssl/gokrazy-web.pem: no PEM certificate")
	}
	if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
		return "", nil, fmt.Errorf("etc/ssl/gokrazy-web.pem: %w", err)
	}
	// The certificate names the device's host name, not 127.0.0.1: the
	// pin is the image's own certificate, byte for byte.
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !bytes.Equal(raw[0], blk.Bytes) {
				return errors.New("the device's certificate is not the image's etc/ssl/gokrazy-web.pem")
			}
			return nil
		}}}
	return "https://127.0.0.1:" + port("https-port.txt", "443"), &http.Client{Transport: tr, CheckRedirect: noRedirect}, nil
}

// lazyDevice finds the device's endpoint when first used: the guard starts
// before anything else.
type lazyDevice struct {
	root string
	pw   []string
}

func (d lazyDevice) Post(ctx context.Context, p string) error {
	dev, err := localDevice(ctx, d.root, rooted(d.root, d.pw))
	if err != nil {
		return err
	}
	return dev.Post(ctx, p)
}

// rebootDevice asks gokrazy (which stops the services and syncs), else
// the kernel.
func rebootDevice(ctx context.Context, root string, pw []string, logf func(string, ...any)) error {
	dev, err := localDevice(ctx, root, rooted(root, pw))
	if err == nil {
		if err = dev.Reboot(ctx); err == nil {
			return nil
		}
	}
	if ctx.Err() != nil || root != "/" {
		// Told to stop (gokrazy's reboot stops the services before
		// it answers), or a test's system root: not the kernel.
		return err
	}
	logf("update: gokrazy's reboot: %v; rebooting through the kernel", err)
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
}

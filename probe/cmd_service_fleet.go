package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/internal/capture"
	"github.com/presscap/presscap/probe/internal/clock"
	"github.com/presscap/presscap/probe/internal/devicepw"
	"github.com/presscap/presscap/probe/internal/filenames"
	"github.com/presscap/presscap/probe/internal/fleet"
	"github.com/presscap/presscap/probe/internal/fleet/fleetconfig"
	"github.com/presscap/presscap/probe/internal/fleet/pwreboot"
	"github.com/presscap/presscap/probe/internal/fleet/reporter"
	"github.com/presscap/presscap/probe/internal/fleet/update"
	"github.com/presscap/presscap/probe/internal/identity"
	"github.com/presscap/presscap/probe/internal/service"
	"github.com/presscap/presscap/probe/internal/status"
	"github.com/presscap/presscap/probe/internal/upload"
)

// fleetSetup is what the service learns about itself for the provider:
// its id, the name of its files (with the provider's label) and, on
// gokrazy, its own password.
type fleetSetup struct {
	id       identity.ID
	host     string // for files, manifests, the status page
	password string // never logged
}

// setupFleet reads the id and the label saved by the last upload, and on
// a gokrazy image (which has /etc/gokr-pw.txt) makes sure of the device
// password in /perm; root is "/" but in tests. A probe without an id keeps
// the configured or system host name and sends no report.
func setupFleet(c config.Config, root string, logf func(string, ...any)) fleetSetup {
	var f fleetSetup
	id, err := identity.Read(root)
	if err != nil {
		logf("fleet: %v (no health report; file names use the host name)", err)
	} else {
		f.id = id
		logf("fleet: probe id %s", id)
	}
	host := c.Hostname // empty without an id: the service takes the system's
	if err == nil {
		host = id.Hostname(c.Hostname)
		if label := upload.SavedLabel(c.Storage.StateDir, id.Value); label != "" {
			host = filenames.Host(host, label)
		}
	}
	f.host = host
	if _, err := os.Stat(filepath.Join(root, "etc/gokr-pw.txt")); err == nil {
		// Only a probe that reports to a pinned server makes a password of
		// its own: elsewhere nobody could learn it, and the bench's
		// `make update` would be locked out after the next reboot.
		perm := filepath.Join(root, "perm")
		var pw string
		var created bool
		var err error
		if c.Upload.Enabled {
			pw, created, err = devicepw.Ensure(perm)
		} else {
			pw, err = devicepw.Read(perm)
		}
		switch {
		case err != nil:
			logf("fleet: per-device password: %v", err)
		case created:
			logf("fleet: per-device password created in /perm/%s (in force from the next boot; the provider finds it in the health report)", devicepw.FileName)
			if err := os.MkdirAll(c.Storage.StateDir, 0o700); err == nil {
				err = pwreboot.Mark(c.Storage.StateDir, clock.BootIDAt(root))
			}
			if err != nil {
				logf("fleet: per-device password: no reboot planned (in force from the next boot anyway): %v", err)
			}
		case pw == "":
			logf("fleet: no per-device password while upload is off (no report could tell the provider); the image's password stays in force")
		}
		f.password = pw
	}
	return f
}

// runReports sends the health reports until ctx ends, over a connection
// of its own to the upload server (the service's uploader exists only
// while a disk is mounted, and a probe without its disk must report too).
// With fromServer, each report's connection also fetches the server's
// configuration for the probe and the report says what became of it.
func runReports(ctx context.Context, f fleetSetup, c config.Config, used []string, root string, svc status.Source, led bool, msgs *fleet.Recent, fromServer *fleetconfig.Applier, upd func() *fleet.Update, tun func() *fleet.Tunnel, sent func(), logf func(string, ...any)) {
	if f.id.Value == "" || !c.Upload.Enabled {
		return
	}
	if err := os.MkdirAll(c.Storage.StateDir, 0o700); err != nil {
		logf("fleet: no health reports: storage.state_dir: %v", err)
		return
	}
	u, err := fleetUploader(c, f, logf)
	if err != nil {
		logf("fleet: no health reports: %v", err)
		return
	}
	if fromServer != nil {
		u.SetConfigReceiver(fromServer.Offer)
	}
	ifaces := map[string]string{}
	for _, l := range c.Links {
		ifaces[l.LinkName()] = l.Interface
	}
	snd, _ := filepath.Glob("/dev/snd/pcmC*D*p")
	r := &reporter.Reporter{
		ID: f.id, Source: svc, Send: u, Logf: logf, SysRoot: root,
		Versions:       fleet.Versions{Image: os.Getenv("PRESSCAP_IMAGE_BUILD"), Probe: probeVersion()},
		Config:         configInfo(used),
		DevicePassword: f.password, PasswordRecipient: c.Upload.PasswordRecipient, SoundCard: len(snd) > 0, LED: led,
		Ifaces: ifaces, LinkState: capture.InterfaceState, Messages: msgs,
	}
	if fromServer != nil {
		r.FleetConfig = fromServer.Report
	}
	r.Update = upd
	r.Tunnel = tun
	r.Sent = sent
	r.Run(ctx)
}

// passwordReboot reboots once, at a quiet time, to put the per-device
// password made in this boot in force (see package pwreboot); told closes
// with the first report that reached the server. A probe whose password
// is older than the boot does nothing.
func passwordReboot(ctx context.Context, c config.Config, root string, svc *service.Service, told <-chan struct{}, logf func(string, ...any)) {
	need, err := pwreboot.Needed(c.Storage.StateDir, clock.BootIDAt(root))
	if err != nil {
		logf("fleet: per-device password: %v", err)
	}
	if !need {
		return
	}
	from, to, err := update.ParseWindow(c.Release.Window)
	if err != nil { // refused by Validate
		logf("fleet: per-device password: %v", err)
		return
	}
	loc, _ := c.Clock.Location()
	s := pwreboot.Scheduler{
		Policy: update.Policy{QuietAfterPress: c.Release.QuietAfterPress.D(), WindowFrom: from, WindowTo: to, Location: loc},
		State:  func() update.State { return serviceState(svc) },
		Told:   told,
		// The guard ends a trial (confirmed, or failed and rebooting):
		// until then the update owns the reboot. An unreadable record
		// counts as pending; the old build falls back by itself.
		Pending: func() bool {
			rec, err := update.Store{Dir: updateDir(root)}.Load()
			return err != nil || rec.Trial != nil
		},
		Reboot: func(ctx context.Context) error { return rebootDevice(ctx, root, c.Status.PasswordFiles, logf) },
		Logf:   logf,
	}
	if err := s.Run(ctx); err != nil && ctx.Err() == nil {
		logf("fleet: %v", err)
	}
}

// configInfo is the hash of the configuration files' bytes, in the order
// they are layered (one file: its own hash), and their paths.
func configInfo(used []string) fleet.Config {
	if len(used) == 0 {
		return fleet.Config{Source: "built-in"}
	}
	h := sha256.New()
	for _, p := range used {
		b, err := os.ReadFile(p)
		if err != nil {
			return fleet.Config{Source: strings.Join(used, " + ")}
		}
		h.Write(b)
	}
	return fleet.Config{Hash: "sha256:" + hex.EncodeToString(h.Sum(nil)), Source: strings.Join(used, " + ")}
}

func probeVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			v += " " + s.Value
		}
	}
	return strings.TrimSpace(v)
}

// recentLog passes the log through and keeps its warnings and errors for
// the health report: lines that say a fault, failure, error or warning.
type recentLog struct {
	w    io.Writer
	msgs *fleet.Recent
	mu   sync.Mutex
	buf  []byte
}

var alarmWords = []string{"error", "fail", "fault", "warning", "cannot", "not running", "refus", "missing"}

func (l *recentLog) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			break
		}
		line := string(l.buf[:i])
		l.buf = l.buf[i+1:]
		lower := strings.ToLower(line)
		for _, w := range alarmWords {
			if strings.Contains(lower, w) {
				level := "warning"
				if strings.Contains(lower, "error") || strings.Contains(lower, "fail") || strings.Contains(lower, "fault") {
					level = "error"
				}
				l.msgs.Add(fleet.Message{Time: time.Now().UTC(), Level: level, Text: line})
				break
			}
		}
	}
	return n, err
}

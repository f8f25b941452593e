// Package reporter writes the probe's health report to the provider's
// server: at boot (once the clock is synced, or after BootWait), after
// every upload run and at least daily, from the service's status snapshot.
package reporter

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/presscap/presscap/probe/internal/devicepw"
	"github.com/presscap/presscap/probe/internal/fleet"
	"github.com/presscap/presscap/probe/internal/identity"
	"github.com/presscap/presscap/probe/internal/status"
)

// When reports are due.
const (
	BootWait = 10 * time.Minute // first report without a synced clock
	Daily    = 24 * time.Hour   // at least this often
	Retry    = 10 * time.Minute // after a failed report
	Tick     = 30 * time.Second // how often Run looks at the snapshot
	BootTick = time.Second      // the same until the boot report
)

// MaxTriggerDevices bounds the presenter names a report lists: a USB
// device names itself, and one that re-enumerates under ever new names
// must not grow the report (and the probe's memory) without end.
const MaxTriggerDevices = 16

// Sender writes a report to the server (*upload.Uploader).
type Sender interface {
	WriteStatus(ctx context.Context, id string, body []byte) error
	Label() string
}

// LinkState says whether an interface exists and is up
// (capture.InterfaceState).
type LinkState func(iface string) (present, up bool, err error)

// Reporter builds and sends reports. Set the fields, then Run.
type Reporter struct {
	ID       identity.ID
	Source   interface{ Snapshot() status.Snapshot }
	Send     Sender
	Logf     func(format string, args ...any)
	Versions fleet.Versions
	Config   fleet.Config
	// FleetConfig says what became of the server's configuration
	// (fleetconfig.Applier.Report); nil leaves it out.
	FleetConfig func() *fleet.FleetConfig
	// Update is the release channel's state (nil: releases are off).
	Update func() *fleet.Update
	// Tunnel is the remote access's state (nil: the tunnel is off); a
	// change of it (opened, closed, refused) is reported at once, so the
	// provider who asked learns the answer.
	Tunnel func() *fleet.Tunnel
	// DevicePassword goes only into the report: sealed to
	// PasswordRecipient (devicepw.Seal) when that is set.
	DevicePassword    string
	PasswordRecipient string
	SoundCard         bool
	LED               bool
	// Ifaces maps capture link names to interfaces, for their state.
	Ifaces    map[string]string
	LinkState LinkState
	// Messages are the log's warnings and errors.
	Messages *fleet.Recent
	// SysRoot is "/" on the probe (uptime, disk model); tests use a tree.
	SysRoot string
	// Sent, if set, is called after each report that reached the server.
	Sent func()

	started     time.Time
	lastOK      time.Time // last report written
	lastAttempt time.Time // upload attempt last reported on
	prevLinks   map[string]status.Link
	reported    map[string]bool // presses (by time) already in a report
	devices     []string        // trigger devices seen since boot
	tunnel      string          // tunnelKey of the tunnel last reported
}

// tunnelKey is what of the tunnel's state is worth a report of its own.
func tunnelKey(t *fleet.Tunnel) string {
	if t == nil {
		return ""
	}
	return t.State + "|" + t.Error + "|" + t.Opened.String()
}

// Run sends reports until ctx ends.
func (r *Reporter) Run(ctx context.Context) error {
	r.started = time.Now()
	var failedAt time.Time
	for {
		snap := r.Source.Snapshot()
		now := time.Now()
		if r.due(snap, now) && (failedAt.IsZero() || now.Sub(failedAt) >= Retry) {
			if err := r.send(ctx, snap); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				r.logf("fleet: health report not written (next try in %s): %v", Retry, err)
				failedAt = now
			} else {
				failedAt = time.Time{}
			}
		}
		// Until the boot report, look often: the disk is mounted and the
		// clock synced within seconds of each other.
		wait := Tick
		if r.lastOK.IsZero() {
			wait = BootTick
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// due says whether a report should go now: one after each finished
// upload attempt (the first too: the disk is in use then, and a probe
// whose clock never syncs uploads after a press long before BootWait);
// the first once the clock is synced and the disk in use (else a boot
// would report a missing disk that was only being mounted), or when
// BootWait passed; one when the tunnel opened, closed or was refused;
// one a day.
func (r *Reporter) due(snap status.Snapshot, now time.Time) bool {
	if u := snap.Upload; u != nil && !u.Running && !u.LastAttempt.IsZero() && !u.LastAttempt.Equal(r.lastAttempt) {
		return true
	}
	if r.lastOK.IsZero() {
		return (snap.ClockSynced && snap.Storage.Root != "") || now.Sub(r.started) >= BootWait
	}
	if r.Tunnel != nil && tunnelKey(r.Tunnel()) != r.tunnel {
		return true
	}
	return now.Sub(r.lastOK) >= Daily
}

func (r *Reporter) send(ctx context.Context, snap status.Snapshot) error {
	rep, commit := r.Build(snap)
	body, err := rep.Marshal()
	if err != nil {
		return err
	}
	if err := r.Send.WriteStatus(ctx, r.ID.Value, body); err != nil {
		return err
	}
	commit()
	if r.Sent != nil {
		r.Sent()
	}
	r.lastOK = time.Now()
	if snap.Upload != nil {
		r.lastAttempt = snap.Upload.LastAttempt
	}
	r.logf("fleet: health report written (%d presses, %d queued)", len(rep.Presses), rep.Queue.Files)
	return nil
}

// Build makes the report from snap. The counters since the last report
// and the presses reported move on only when commit is called (the report
// reached the server).
func (r *Reporter) Build(snap status.Snapshot) (fleet.Report, func()) {
	rep := fleet.Report{
		ID: r.ID.Value, IDSource: r.ID.Source, Hostname: snap.Host, Label: r.Send.Label(),
		Time: snap.Now, ClockSynced: snap.ClockSynced, Versions: r.Versions,
		UptimeS: r.uptime(snap), Config: r.Config,
		SoundCard: r.SoundCard, LED: r.LED,
		TriggerDevices: []string{}, Links: []fleet.Link{}, Presses: []fleet.Press{}, Messages: []fleet.Message{},
	}
	rep.DevicePassword, rep.DevicePasswordSealed = r.password()
	if r.FleetConfig != nil {
		rep.FleetConfig = r.FleetConfig()
	}
	if r.Update != nil {
		rep.Update = r.Update()
	}
	if r.Tunnel != nil {
		rep.Tunnel = r.Tunnel()
	}
	rep.Disk = r.disk(snap)
	for _, l := range snap.Links {
		prev := r.prevLinks[l.Name]
		if l.Seen < prev.Seen || l.Drops < prev.Drops { // the service restarted its capture
			prev = status.Link{}
		}
		rep.Links = append(rep.Links, fleet.Link{Name: l.Name, State: r.state(l.Name),
			Packets: l.Seen - prev.Seen, Drops: l.Drops - prev.Drops})
	}
	for _, d := range snap.Devices {
		if len(r.devices) < MaxTriggerDevices && !slices.Contains(r.devices, d.Name) {
			r.devices = append(r.devices, d.Name)
		}
	}
	rep.TriggerDevices = append(rep.TriggerDevices, r.devices...)
	var keys []string
	for _, p := range snap.Presses {
		k := p.Time.UTC().Format(time.RFC3339Nano)
		if !p.Done || r.reported[k] {
			continue
		}
		keys = append(keys, k)
		rep.Presses = append(rep.Presses, fleet.Press{Time: p.Time, Files: append([]string{}, p.Files...)})
	}
	if u := snap.Upload; u != nil {
		rep.Queue = fleet.Queue{Files: u.Files, Bytes: u.Bytes}
		rep.Upload = fleet.Upload{LastAttempt: u.LastAttempt, LastSuccess: u.LastSuccess, LastResult: u.LastResult, LastError: u.LastError}
	}
	if r.Messages != nil {
		rep.Messages = r.Messages.List()
	}
	commit := func() {
		r.tunnel = tunnelKey(rep.Tunnel)
		r.prevLinks = map[string]status.Link{}
		for _, l := range snap.Links {
			r.prevLinks[l.Name] = l
		}
		if r.reported == nil {
			r.reported = map[string]bool{}
		}
		// Forget presses that left the snapshot's recent list.
		inList := map[string]bool{}
		for _, p := range snap.Presses {
			inList[p.Time.UTC().Format(time.RFC3339Nano)] = true
		}
		for k := range r.reported {
			if !inList[k] {
				delete(r.reported, k)
			}
		}
		for _, k := range keys {
			r.reported[k] = true
		}
	}
	return rep, commit
}

// password is the device password for the report: in clear for a probe
// with an account of its own, else sealed; a failed seal leaves it out
// rather than send it in clear.
func (r *Reporter) password() (clear, sealed string) {
	if r.DevicePassword == "" || r.PasswordRecipient == "" {
		return r.DevicePassword, ""
	}
	s, err := devicepw.Seal(r.DevicePassword, r.PasswordRecipient)
	if err != nil {
		r.logf("fleet: %v (the report goes without the password)", err)
		return "", ""
	}
	return "", s
}

func (r *Reporter) state(link string) string {
	iface := r.Ifaces[link]
	if iface == "" {
		iface = link
	}
	if r.LinkState == nil {
		return ""
	}
	present, up, err := r.LinkState(iface)
	switch {
	case err != nil:
		return "unknown"
	case !present:
		return "missing"
	case !up:
		return "down"
	}
	return "up"
}

// uptime is the system's (/proc/uptime), else the service's.
func (r *Reporter) uptime(snap status.Snapshot) int64 {
	if d, err := fleet.Uptime(r.SysRoot); err == nil {
		return int64(d / time.Second)
	}
	return int64(snap.Now.Sub(snap.Started) / time.Second)
}

// disk is the capture disk: its file system's size and free space, the
// model of the device it is on, the ring's span.
func (r *Reporter) disk(snap status.Snapshot) fleet.Disk {
	var d fleet.Disk
	st := snap.Storage
	if st.Root == "" {
		return d
	}
	d.Present = true
	var fs syscall.Statfs_t
	if err := syscall.Statfs(st.Root, &fs); err == nil {
		d.SizeBytes = int64(fs.Blocks) * fs.Bsize
		d.FreeBytes = int64(fs.Bavail) * fs.Bsize
	}
	if st.Error != "" {
		d.Errors = 1
	}
	if st.Device != "" {
		d.Model = r.model(filepath.Base(st.Device))
	}
	if snap.Ring != nil {
		d.RingOldest, d.RingNewest = snap.Ring.Oldest, snap.Ring.Newest
	}
	return d
}

// model reads the model of the disk holding block device dev (a partition
// such as sda1 resolves to its disk sda).
func (r *Reporter) model(dev string) string {
	p, err := filepath.EvalSymlinks(filepath.Join(r.SysRoot, "sys/class/block", dev))
	if err != nil {
		return ""
	}
	for _, dir := range []string{p, filepath.Dir(p)} {
		if b, err := os.ReadFile(filepath.Join(dir, "device/model")); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	return ""
}

func (r *Reporter) logf(format string, args ...any) {
	if r.Logf != nil {
		r.Logf(format, args...)
	}
}

package main

import (
	"context"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/internal/clock"
	"github.com/presscap/presscap/probe/internal/fleet"
	"github.com/presscap/presscap/probe/internal/fleet/tunnel"
	"github.com/presscap/presscap/probe/internal/status"
)

// tunnelFirst is how soon after start the probe looks for a tunnel
// request: a provider who just pushed an update through the tunnel waits
// for the new build to open it again.
const tunnelFirst = 5 * time.Second

// runTunnel starts the remote access the provider asks for in
// fleet/tunnel/<id> (issue 14); its state goes into the health report.
// It needs an id and the upload's server; wait returns once it stopped
// after ctx ended.
func runTunnel(ctx context.Context, c config.Config, fl fleetSetup, root string, svc status.Source, logf func(string, ...any)) (report func() *fleet.Tunnel, wait func()) {
	none := func() {}
	if fl.id.Value == "" || !c.Upload.Enabled || !c.Tunnel.Enabled {
		return nil, none
	}
	if err := os.MkdirAll(c.Storage.StateDir, 0o700); err != nil {
		logf("tunnel: off: storage.state_dir: %v", err)
		return nil, none
	}
	up, err := fleetUploader(c, fl, logf)
	if err != nil {
		logf("tunnel: off: %v", err)
		return nil, none
	}
	st := statusTarget(c.Status.Listen)
	if st == "" && len(c.Status.Listen) > 0 {
		logf("tunnel: status.listen %s: none is served on this device's loopback: a request's status port is refused (the tunnel leads to nothing but the device itself)",
			strings.Join(c.Status.Listen, ", "))
	}
	r := &tunnel.Runner{
		Path:    path.Join(c.Upload.RemoteDir, fleet.TunnelDir, fl.id.Value),
		Connect: up.WithSSH,
		Web:     webTarget(root), Status: st,
		First: tunnelFirst, CheckInterval: c.Tunnel.CheckInterval.D(), MaxDuration: c.Tunnel.MaxDuration.D(),
		StateDir: c.Storage.StateDir, Clock: clock.Real{}, Logf: logf,
		Sync: snapshotSync{svc}, BootID: clock.BootIDAt(root),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	return r.Report, func() { <-done }
}

// snapshotSync is the service's own notion of a synced clock
// (clock.sync), as its snapshot reports it.
type snapshotSync struct{ src status.Source }

func (s snapshotSync) Synced() bool { return s.src.Snapshot().ClockSynced }

// tunnelSource adds the tunnel's state to the status page's snapshot.
type tunnelSource struct {
	status.CheckSource
	report func() *fleet.Tunnel
}

func (s tunnelSource) Snapshot() status.Snapshot {
	snap := s.CheckSource.Snapshot()
	snap.Tunnel = s.report()
	return snap
}

// withTunnel is src with the tunnel's state, src where it is off.
func withTunnel(src status.CheckSource, report func() *fleet.Tunnel) status.CheckSource {
	if report == nil {
		return src
	}
	return tunnelSource{src, report}
}

// webTarget is gokrazy's own web UI on this device (its HTTPS port where
// the image has TLS, so the provider speaks HTTPS through the tunnel), ""
// off gokrazy: nothing else on the host is forwarded, and no port file
// can make it another host.
func webTarget(root string) string {
	if _, err := os.Stat(filepath.Join(root, "etc/gokr-pw.txt")); err != nil {
		return ""
	}
	base, _, err := localEndpoint(root)
	if err != nil {
		return ""
	}
	u, err := url.Parse(base)
	if err != nil || u.User != nil || u.Path != "" || u.Hostname() != "127.0.0.1" {
		return ""
	}
	return loopbackTarget(u.Hostname(), u.Port())
}

// statusTarget is the status page on the device's own loopback: the port
// of the first listen address the status server serves there (wildcard,
// "private", "localhost" or a loopback IP); "" when none is. A listen
// address of another host is never a target: a fleet configuration may
// set status.listen, and the tunnel must not lead into the customer's LAN.
func statusTarget(listen []string) string {
	for _, a := range listen {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		ip := net.ParseIP(host)
		switch {
		case host == "" || host == "private" || host == "localhost" || (ip != nil && ip.IsUnspecified()):
			host = "127.0.0.1"
		case ip == nil || !ip.IsLoopback():
			continue
		}
		if t := loopbackTarget(host, port); t != "" {
			return t
		}
	}
	return ""
}

// loopbackTarget is host:port when host is a loopback IP and port a port
// number, else "".
func loopbackTarget(host, port string) string {
	ip := net.ParseIP(host)
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || ip == nil || !ip.IsLoopback() {
		return ""
	}
	return net.JoinHostPort(host, port)
}

package tunnel_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/field"
	"github.com/presscap/presscap/internal/testing/fakeclock"
	"github.com/presscap/presscap/internal/testing/sshdtest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/internal/fleet"
	"github.com/presscap/presscap/probe/internal/fleet/tunnel"
	"github.com/presscap/presscap/probe/internal/upload"
)

const (
	check  = 5 * time.Minute
	maxDur = 2 * time.Hour
	id     = "10000000a1b2c3d4"
)

// rig is a real sshd, the probe's key authorized there with the options
// the provider's documentation gives, two local HTTP servers standing in
// for the web UI and the status page, and a running tunnel.Runner.
type rig struct {
	srv    *sshdtest.Server
	file   string // the request file on the server
	clk    *fakeclock.Clock
	r      *tunnel.Runner
	log    *testtool.Log
	cancel context.CancelFunc
	done   chan error
}

// start runs the runner against a fresh sshd whose authorized_keys line
// for the probe carries options (e.g. restrict,port-forwarding,permitlisten=...);
// set changes the runner before it runs.
func start(t *testing.T, options string, set ...func(*tunnel.Runner)) *rig {
	t.Helper()
	if testing.Short() {
		t.Skip("needs root and sshd")
	}
	srv := sshdtest.Start(t, sshdtest.Options{Extra: []string{"AllowTcpForwarding remote"}})
	remoteDir := filepath.Join(srv.Dir, "incoming")
	if err := os.MkdirAll(filepath.Join(remoteDir, "fleet", "tunnel"), 0o755); err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	_, line, err := upload.LoadOrCreateKey(filepath.Join(stateDir, upload.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	if options != "" {
		line = options + " " + line
	}
	srv.AuthorizeLine(line)
	cfg := upload.DefaultConfig()
	cfg.Enabled, cfg.Server, cfg.User, cfg.RemoteDir = true, srv.Addr(), "root", remoteDir
	cfg.HostKey = srv.KnownHostsLine()
	cfg.TimeZone = "UTC"
	cfg.ConnectTimeout = field.Duration(10 * time.Second)
	u, err := upload.New(cfg, "", stateDir, nil, nil, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "gokrazy web UI "+r.URL.Path) }))
	t.Cleanup(web.Close)
	status := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "presscap status "+r.URL.Path) }))
	t.Cleanup(status.Close)
	g := &rig{srv: srv, file: filepath.Join(remoteDir, fleet.TunnelDir, id), clk: fakeclock.New(time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)), log: &testtool.Log{T: t}}
	g.r = &tunnel.Runner{
		Path: filepath.Join(remoteDir, fleet.TunnelDir, id), Connect: u.WithSSH,
		Web: web.Listener.Addr().String(), Status: status.Listener.Addr().String(),
		CheckInterval: check, MaxDuration: maxDur, StateDir: stateDir, Clock: g.clk, Logf: g.log.Logf,
		Sync: g.clk, BootID: "boot-1",
	}
	for _, fn := range set {
		fn(g.r)
	}
	g.run()
	t.Cleanup(g.stop)
	return g
}

func (g *rig) run() {
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel, g.done = cancel, make(chan error, 1)
	go func() { g.done <- g.r.Run(ctx) }()
}

// restart stops the runner and starts another on the same state, as the
// probe's next start (after a crash or a reboot) would.
func (g *rig) restart() {
	g.stop()
	old := g.r
	g.r = &tunnel.Runner{Path: old.Path, Connect: old.Connect, Web: old.Web, Status: old.Status,
		CheckInterval: old.CheckInterval, MaxDuration: old.MaxDuration, StateDir: old.StateDir, Clock: old.Clock, Logf: old.Logf,
		Sync: old.Sync, BootID: old.BootID}
	g.run()
}

// reboot restarts the runner as the probe's next boot: another boot id,
// a boot clock from zero, and the wall clock at wall, synced or not (a
// Pi has no RTC).
func (g *rig) reboot(wall time.Time, synced bool) {
	g.stop()
	g.clk = fakeclock.New(wall)
	g.clk.SetSynced(synced)
	g.r.Clock, g.r.Sync, g.r.BootID = g.clk, g.clk, g.r.BootID+"+1"
	g.restart()
}

// check moves the clock a check interval on and waits until the runner
// has done that check.
func (g *rig) check(t *testing.T) {
	t.Helper()
	n := g.r.Checks()
	g.clk.Advance(check)
	for i := 0; i < 200; i++ {
		if g.r.Checks() > n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no check after the clock moved on: report %+v\nlog:\n%s", g.r.Report(), g.log)
}

func (g *rig) stop() {
	if g.cancel == nil {
		return
	}
	g.cancel()
	<-g.done
	g.cancel = nil
}

func (g *rig) request(t *testing.T, body string) {
	t.Helper()
	if err := os.WriteFile(g.file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// until advances the clock a check at a time (the runner may not wait
// yet) until cond holds, failing after a while of real time.
func (g *rig) until(t *testing.T, what string, cond func(*fleet.Tunnel) bool) *fleet.Tunnel {
	t.Helper()
	for i := 0; i < 20; i++ {
		for j := 0; j < 20; j++ {
			if rep := g.r.Report(); cond(rep) {
				return rep
			}
			time.Sleep(50 * time.Millisecond)
		}
		g.clk.Advance(check)
	}
	t.Fatalf("no %s: report %+v\nlog:\n%s\nsshd:\n%s", what, g.r.Report(), g.log, g.srv.Log())
	return nil
}

// waitFor polls cond in real time without moving the clock.
func (g *rig) waitFor(t *testing.T, what string, cond func(*fleet.Tunnel) bool) *fleet.Tunnel {
	t.Helper()
	for i := 0; i < 200; i++ {
		if rep := g.r.Report(); cond(rep) {
			return rep
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %s: report %+v\nlog:\n%s", what, g.r.Report(), g.log)
	return nil
}

func state(s string) func(*fleet.Tunnel) bool {
	return func(t *fleet.Tunnel) bool { return t.State == s }
}

// get asks the server's loopback port what the tunnel serves.
func get(port int, path string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// closed waits until nothing listens on the server's port any more.
func closed(t *testing.T, port int) {
	t.Helper()
	for i := 0; i < 100; i++ {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the server still listens on 127.0.0.1:%d", port)
}

// TestTunnelFollowsFile: the request file appears → both ports on the
// server's loopback reach the web UI and the status page (through
// sshd with the provider's restrictions); the file is removed → the ports
// close at the next check; who asked is logged and reported.
func TestTunnelFollowsFile(t *testing.T) {
	web, status := sshdtest.FreePort(t), sshdtest.FreePort(t)
	g := start(t, fmt.Sprintf(`restrict,port-forwarding,permitlisten="127.0.0.1:%d",permitlisten="127.0.0.1:%d"`, web, status))
	g.waitFor(t, "first check", func(r *fleet.Tunnel) bool { return !r.LastCheck.IsZero() })
	if rep := g.r.Report(); rep.State != "idle" {
		t.Fatalf("without a file: %+v", rep)
	}
	g.request(t, fmt.Sprintf("web=%d\nstatus=%d\nby=alice\nreason=ticket 4711\n", web, status))
	rep := g.until(t, "open tunnel", state("open"))
	if rep.WebPort != web || rep.StatusPort != status || rep.By != "alice" || rep.Reason != "ticket 4711" || rep.Requested.IsZero() ||
		!rep.Until.Equal(rep.Opened.Add(maxDur)) {
		t.Errorf("report of the open tunnel: %+v", rep)
	}
	if !strings.Contains(g.log.String(), `asked by "alice" ("ticket 4711")`) {
		t.Errorf("the log does not say who asked:\n%s", g.log)
	}
	for _, c := range []struct {
		port       int
		path, want string
	}{{web, "/update/features", "gokrazy web UI /update/features"}, {status, "/status.json", "presscap status /status.json"}} {
		got, err := get(c.port, c.path)
		if err != nil || got != c.want {
			t.Errorf("through server port %d: %q, %v; want %q", c.port, got, err, c.want)
		}
	}
	// A keep-alive connection stays open across the removal: it must
	// end with the tunnel too.
	held, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", web))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := os.Remove(g.file); err != nil {
		t.Fatal(err)
	}
	g.clk.Advance(check) // the open tunnel waits on its check already
	g.waitFor(t, "closed tunnel", state("idle"))
	closed(t, web)
	closed(t, status)
	held.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := held.Read(make([]byte, 1)); err == nil || os.IsTimeout(err) {
		t.Errorf("a connection through the tunnel outlived it: %v", err)
	}
	if !strings.Contains(g.log.String(), "closed: "+g.file+" was removed") {
		t.Errorf("the log does not say why the tunnel closed:\n%s", g.log)
	}
}

// TestTunnelMaxDuration: a file left there closes its tunnel after
// max_duration, and the same file does not open it again; written anew,
// it does.
func TestTunnelMaxDuration(t *testing.T) {
	web := sshdtest.FreePort(t)
	g := start(t, "")
	g.request(t, fmt.Sprintf("web=%d\nby=bob\n", web))
	g.until(t, "open tunnel", state("open"))
	if got, err := get(web, "/"); err != nil || got != "gokrazy web UI /" {
		t.Fatalf("through the tunnel: %q, %v", got, err)
	}
	g.clk.Advance(maxDur)
	g.waitFor(t, "expired tunnel", state("expired"))
	closed(t, web)
	for i := 0; i < 3; i++ {
		g.check(t)
		if rep := g.r.Report(); rep.State != "expired" {
			t.Fatalf("the same file after max_duration: %+v", rep)
		}
	}
	closed(t, web)
	if !strings.Contains(g.log.String(), "closed after tunnel.max_duration 2h0m0s") {
		t.Errorf("log:\n%s", g.log)
	}
	g.request(t, fmt.Sprintf("web=%d\nby=bob\nreason=once more\n", web))
	g.until(t, "tunnel of the new request", state("open"))
	if got, err := get(web, "/"); err != nil || got != "gokrazy web UI /" {
		t.Fatalf("through the reopened tunnel: %q, %v", got, err)
	}
}

// TestTunnelPermitlistenRefuses: a port the key's permitlisten does not
// allow is refused by sshd; the runner reports why, keeps running, and
// opens the allowed port once the file names it. OpenSSH compares the
// host literally: the probe binds 127.0.0.1, which "localhost:PORT" does
// not allow (the provider's documentation says so).
func TestTunnelPermitlistenRefuses(t *testing.T) {
	allowed, other := sshdtest.FreePort(t), sshdtest.FreePort(t)
	g := start(t, fmt.Sprintf(`restrict,port-forwarding,permitlisten="127.0.0.1:%d",permitlisten="localhost:%d"`, allowed, other))
	g.request(t, fmt.Sprintf("web=%d\n", other))
	rep := g.until(t, "refusal", state("refused"))
	want := fmt.Sprintf("web: the server refused to listen on 127.0.0.1:%d (its authorized_keys permitlisten=", other)
	if !strings.Contains(rep.Error, want) || !strings.Contains(g.log.String(), want) {
		t.Errorf("report %+v, log:\n%s\nwant %q", rep, g.log, want)
	}
	closed(t, other)
	// The port may only be held by the session of the probe's previous
	// boot: asked again soon, not a check interval later.
	if !g.clk.WaitForWaiter(10 * time.Second) {
		t.Fatal("the runner does not wait for its next try")
	}
	g.clk.Advance(tunnel.Reconnect)
	g.waitFor(t, "another try after tunnel.Reconnect", func(r *fleet.Tunnel) bool { return r.LastCheck.After(rep.LastCheck) })
	g.request(t, fmt.Sprintf("web=%d\n", allowed))
	g.until(t, "open tunnel", state("open"))
	if got, err := get(allowed, "/"); err != nil || got != "gokrazy web UI /" {
		t.Fatalf("through the allowed port: %q, %v", got, err)
	}
}

// TestTunnelBadFile: a file that asks for what the configuration does not
// allow (a bind address, a low port) opens nothing and is reported naming
// the field.
func TestTunnelBadFile(t *testing.T) {
	web := sshdtest.FreePort(t)
	g := start(t, "")
	g.request(t, fmt.Sprintf("web=%d\nbind=0.0.0.0\n", web))
	rep := g.until(t, "refusal", state("refused"))
	if !strings.Contains(rep.Error, "line 2: bind: unknown key") {
		t.Errorf("report %+v", rep)
	}
	closed(t, web)
	g.request(t, "web=22\n")
	g.until(t, "refusal of port 22", func(r *fleet.Tunnel) bool { return strings.Contains(r.Error, `web: "22": want a port 1024 to 65535`) })
}

// TestTunnelMaxDurationAcrossRestarts: a restart of the probe neither
// extends the request's max_duration nor reopens an expired one.
func TestTunnelMaxDurationAcrossRestarts(t *testing.T) {
	web := sshdtest.FreePort(t)
	g := start(t, "")
	g.request(t, fmt.Sprintf("web=%d\n", web))
	first := g.until(t, "open tunnel", state("open"))
	g.clk.Advance(maxDur - 30*time.Minute)
	g.restart()
	rep := g.until(t, "tunnel open again after the restart", state("open"))
	if !rep.Opened.Equal(first.Opened) || !rep.Until.Equal(first.Until) {
		t.Fatalf("after a restart the tunnel runs %s to %s, want the request's first %s to %s", rep.Opened, rep.Until, first.Opened, first.Until)
	}
	if got, err := get(web, "/"); err != nil || got != "gokrazy web UI /" {
		t.Fatalf("through the tunnel after the restart: %q, %v", got, err)
	}
	g.clk.Set(first.Until)
	g.waitFor(t, "expired tunnel", state("expired"))
	closed(t, web)
	g.restart()
	g.until(t, "expired after the restart", state("expired"))
	closed(t, web)
}

// TestTunnelRequestChanged: a request rewritten with other ports while
// open moves the tunnel to them at the next check.
func TestTunnelRequestChanged(t *testing.T) {
	web, other := sshdtest.FreePort(t), sshdtest.FreePort(t)
	g := start(t, "")
	g.request(t, fmt.Sprintf("web=%d\n", web))
	g.until(t, "open tunnel", state("open"))
	g.request(t, fmt.Sprintf("web=%d\nby=dave\n", other))
	g.until(t, "tunnel on the new port", func(r *fleet.Tunnel) bool { return r.State == "open" && r.WebPort == other })
	closed(t, web)
	if got, err := get(other, "/x"); err != nil || got != "gokrazy web UI /x" {
		t.Fatalf("through the new port: %q, %v", got, err)
	}
	if !strings.Contains(g.log.String(), "changed: closing the tunnel it asked for") {
		t.Errorf("log:\n%s", g.log)
	}
}

// TestTunnelTargetOnLoopbackOnly: a target that is not the device's
// loopback (a status.listen of another host) is refused, naming it; no
// port opens on the server.
func TestTunnelTargetOnLoopbackOnly(t *testing.T) {
	status := sshdtest.FreePort(t)
	g := start(t, "", func(r *tunnel.Runner) { r.Status = "192.0.2.1:80" })
	g.request(t, fmt.Sprintf("status=%d\n", status))
	rep := g.until(t, "refusal", state("refused"))
	if want := "status: 192.0.2.1:80 is not on this device's loopback"; !strings.Contains(rep.Error, want) || !strings.Contains(g.log.String(), want) {
		t.Errorf("report %+v, log:\n%s\nwant %q", rep, g.log, want)
	}
	closed(t, status)
}

// silent is a local target that accepts connections and never reads,
// answers or closes them until end.
func silent(t *testing.T) (addr string, accepted <-chan struct{}, end func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 16)
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			ch <- struct{}{}
		}
	}()
	return l.Addr().String(), ch, func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}
}

// TestTunnelClosesSilentConnections: a connection whose local target
// never answers ends with the tunnel: the removed file closes it at the
// next check, and the probe's stop returns at once.
func TestTunnelClosesSilentConnections(t *testing.T) {
	web := sshdtest.FreePort(t)
	target, accepted, end := silent(t)
	g := start(t, "", func(r *tunnel.Runner) { r.Web = target })
	t.Cleanup(end) // before the rig's stop: a failing run does not hang
	hold := func() net.Conn {
		t.Helper()
		g.request(t, fmt.Sprintf("web=%d\n", web))
		g.until(t, "open tunnel", state("open"))
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", web))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		select {
		case <-accepted:
		case <-time.After(10 * time.Second):
			t.Fatal("the connection did not reach the local target")
		}
		return c
	}
	hold()
	if err := os.Remove(g.file); err != nil {
		t.Fatal(err)
	}
	g.clk.Advance(check)
	g.waitFor(t, "closed tunnel", state("idle"))
	closed(t, web)

	hold()
	stopped := make(chan struct{})
	go func() { g.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatalf("the runner's stop hangs on a silent connection; report %+v", g.r.Report())
	}
}

// TestTunnelUnsyncedReboot: a reboot whose clock is not synced (no RTC,
// NTP not answered yet) neither grants the request a fresh max_duration
// nor reopens it once over; a new request still opens on that clock.
func TestTunnelUnsyncedReboot(t *testing.T) {
	web := sshdtest.FreePort(t)
	g := start(t, "")
	g.request(t, fmt.Sprintf("web=%d\nby=erin\n", web))
	first := g.until(t, "open tunnel", state("open"))
	for g.clk.Now().Before(first.Opened.Add(time.Hour + 50*time.Minute)) {
		g.check(t)
	}
	g.reboot(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), false)
	rep := g.until(t, "open tunnel after the reboot", state("open"))
	if left := rep.Until.Sub(g.clk.Now()); left > 10*time.Minute {
		t.Errorf("after the reboot the tunnel has %v left (until %s), want at most the 10 min of its max_duration left", left, rep.Until)
	}
	if !rep.Opened.Equal(first.Opened) {
		t.Errorf("opened %s after the reboot, want the request's first %s", rep.Opened, first.Opened)
	}
	for i := 0; i < 6; i++ {
		g.check(t)
	}
	if rep := g.r.Report(); rep.State != "expired" {
		t.Fatalf("30 min after the reboot: %+v\nlog:\n%s", rep, g.log)
	}
	closed(t, web)
	g.reboot(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), false)
	g.until(t, "expired after another reboot", state("expired"))
	closed(t, web)
	// The provider's first access to a probe whose NTP is blocked.
	g.request(t, fmt.Sprintf("web=%d\nby=erin\nreason=again\n", web))
	rep = g.until(t, "a new request on an unsynced clock", state("open"))
	if !rep.Until.Equal(rep.Opened.Add(maxDur)) {
		t.Errorf("new request: %+v", rep)
	}
	if got, err := get(web, "/"); err != nil || got != "gokrazy web UI /" {
		t.Fatalf("through the tunnel of the new request: %q, %v", got, err)
	}
}

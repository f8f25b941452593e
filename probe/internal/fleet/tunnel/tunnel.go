package tunnel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/presscap/presscap/internal/safefile"
	"github.com/presscap/presscap/probe/internal/clock"
	"github.com/presscap/presscap/probe/internal/fleet"
)

// Tuning that is not configuration: keepalives keep an idle tunnel's
// connection inside upload's I/O timeout and find a dead server; a lost
// connection of an open tunnel is tried again soon (the provider is
// waiting on it); a tunnel serves a bounded number of connections.
const (
	Keepalive = 30 * time.Second
	Reconnect = 15 * time.Second
	MaxConns  = 32
	dialLocal = 10 * time.Second
)

// Runner looks for the request file and holds the tunnel it asks for.
// Set the fields, then Run.
type Runner struct {
	// Path is the request file on the server (<remote_dir>/fleet/tunnel/<id>).
	Path string
	// Connect dials the server and calls fn over the connection
	// (upload.Uploader.WithSSH: pinned host key, the probe's key).
	Connect func(ctx context.Context, fn func(*ssh.Client, *sftp.Client) error) error
	// Web and Status are the local addresses the server's ports lead to
	// (the device's own web UI and status page), on its loopback: "" or
	// another host refuses that port.
	Web, Status string
	// First is the wait before the first check; CheckInterval between
	// checks, also while open.
	First, CheckInterval time.Duration
	MaxDuration          time.Duration
	// StateDir keeps when the request in force was first opened, so that
	// a restart neither extends nor reopens it.
	StateDir string
	Clock    clock.Time
	// Sync says whether the wall clock is synced (nil: it is); BootID is
	// this boot's (clock.BootID; "": no saved count is of this boot).
	Sync   clock.Sync
	BootID string
	Logf   func(string, ...any)

	mu      sync.Mutex
	status  fleet.Tunnel
	lastLog string
	checks  int // checks done, for tests
}

// Report is the tunnel's state for the health report.
func (r *Runner) Report() *fleet.Tunnel {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.status
	if t.State == "" {
		t.State = "idle"
	}
	return &t
}

func (r *Runner) set(fn func(t *fleet.Tunnel)) {
	r.mu.Lock()
	fn(&r.status)
	r.mu.Unlock()
}

// logOnce logs a line unless it is the one logged last: a check every
// few minutes finds the same thing each time.
func (r *Runner) logOnce(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	r.mu.Lock()
	same := line == r.lastLog
	r.lastLog = line
	r.mu.Unlock()
	if !same {
		r.Logf("%s", line)
	}
}

// errRefused marks a request that cannot be served as it stands (a bad
// file, a port the server does not allow): it waits for the next check,
// unlike a lost connection. A port the server refused may only still be
// held by the session of this probe's previous boot, which sshd drops
// once it notices: that is tried again sooner (busy).
type errRefused struct {
	error
	busy bool
}

func (e errRefused) Unwrap() error { return e.error }

// checked counts a check done, once the next one is waited for.
func (r *Runner) checked() {
	r.mu.Lock()
	r.checks++
	r.mu.Unlock()
}

// Run checks until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	next, backoff := r.Clock.After(r.First), Reconnect
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-next:
		}
		wait := r.CheckInterval
		next = nil
		opened := false
		err := r.Connect(ctx, func(sc *ssh.Client, fc *sftp.Client) error {
			return r.session(ctx, sc, fc, &opened)
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var refused errRefused
		switch {
		case errors.As(err, &refused):
			r.set(func(t *fleet.Tunnel) { *t = fleet.Tunnel{State: "refused", Error: err.Error(), LastCheck: t.LastCheck} })
			r.logOnce("tunnel: %s: %v", r.Path, err)
			if refused.busy {
				wait, backoff = min(backoff, r.CheckInterval), 2*backoff
				next = r.Clock.After(wait)
			}
		case err != nil:
			r.set(func(t *fleet.Tunnel) { *t = fleet.Tunnel{State: "error", Error: err.Error(), LastCheck: t.LastCheck} })
			r.logOnce("tunnel: %v", err)
			if opened {
				wait = min(Reconnect, r.CheckInterval)
			}
		}
		if next == nil {
			next, backoff = r.Clock.After(wait), Reconnect
		}
		r.checked()
	}
}

// file is one version of the request file.
type file struct {
	req     Request
	key     string // content and time on the server
	written time.Time
}

// read reads the request file; fs.ErrNotExist when there is none.
func (r *Runner) read(fc *sftp.Client) (file, error) {
	f, err := fc.Open(r.Path)
	if err != nil {
		return file{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return file{}, err
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFile+1))
	if err != nil {
		return file{}, err
	}
	sum := sha256.Sum256(b)
	v := file{key: hex.EncodeToString(sum[:]) + "@" + strconv.FormatInt(st.ModTime().Unix(), 10), written: st.ModTime()}
	v.req, err = Parse(b)
	if err != nil {
		return v, errRefused{error: err}
	}
	return v, nil
}

// session serves the requests found on one connection, one after the
// other, until none is in force.
func (r *Runner) session(ctx context.Context, sc *ssh.Client, fc *sftp.Client, opened *bool) error {
	for {
		now := r.Clock.Now()
		r.set(func(t *fleet.Tunnel) { t.LastCheck = now })
		v, err := r.read(fc)
		if errors.Is(err, fs.ErrNotExist) {
			r.set(func(t *fleet.Tunnel) { *t = fleet.Tunnel{State: "idle", LastCheck: now} })
			r.logOnce("tunnel: no request on the server (%s)", r.Path)
			return nil
		}
		if err != nil {
			return err
		}
		since, left := r.window(v.key, now)
		if left <= 0 {
			r.set(func(t *fleet.Tunnel) {
				*t = fleet.Tunnel{State: "expired", LastCheck: now, Requested: v.written, By: v.req.By, Reason: v.req.Reason,
					Opened: since, Until: now.Add(left)}
			})
			r.logOnce("tunnel: %s (written %s) is still there, but its tunnel was open for tunnel.max_duration %v: not opened again until the file is written anew",
				r.Path, v.written.UTC().Format(time.RFC3339), r.MaxDuration)
			return nil
		}
		if err := r.hold(ctx, sc, fc, v, since, left, opened); err != nil {
			return err
		}
	}
}

// state is the request last opened, kept in StateDir. Its time in force
// is counted on the boot clock, which no clock step moves: Base had
// passed when boot BootID's clock read Start; Seen had passed at the last
// save.
type state struct {
	Key     string        `json:"key"`
	Opened  time.Time     `json:"opened"`
	Synced  bool          `json:"synced,omitempty"` // Opened is on a synced clock
	Expired bool          `json:"expired,omitempty"`
	BootID  string        `json:"boot_id,omitempty"`
	Start   time.Duration `json:"start,omitempty"`
	Base    time.Duration `json:"base,omitempty"`
	Seen    time.Duration `json:"seen,omitempty"`
}

const stateFile = "tunnel-state.json"

func (r *Runner) load() state {
	var s state
	b, err := os.ReadFile(filepath.Join(r.StateDir, stateFile))
	if err == nil {
		json.Unmarshal(b, &s)
	}
	return s
}

func (r *Runner) save(s state) {
	b, _ := json.Marshal(s)
	if err := safefile.WriteFile(filepath.Join(r.StateDir, stateFile), b, 0o600); err != nil {
		r.Logf("tunnel: %v (a restart would count max_duration anew)", err)
	}
}

func (r *Runner) synced() bool { return r.Sync == nil || r.Sync.Synced() }

// window says since when the request key is in force and how long it has
// left (none or less: its max_duration is over), counting on and saving.
// Within a boot the boot clock counts. A later boot goes on from the count
// saved last plus a check interval (the earlier boot may have run that
// long after it): without an RTC an unsynced wall clock cannot tell how
// long the probe was off, and a reboot must not grant a fresh period. A
// synced clock also counts from the first look when that was synced, time
// off included; the larger count holds.
func (r *Runner) window(key string, now time.Time) (time.Time, time.Duration) {
	s := r.load()
	if s.Key == key && s.Expired {
		return s.Opened, min(0, r.MaxDuration-s.Seen)
	}
	bt, ok := r.Clock.BootTime()
	switch {
	case s.Key != key:
		s = state{Key: key, Opened: now, Synced: r.synced(), BootID: r.BootID, Start: bt}
	case !ok || r.BootID == "" || s.BootID != r.BootID:
		s.BootID, s.Start, s.Base = r.BootID, bt, s.Seen+r.CheckInterval
	}
	if !ok {
		// No boot clock: each look counts a check interval.
		s.BootID = ""
	}
	d := s.Base + bt - s.Start
	if s.Synced && r.synced() {
		d = max(d, now.Sub(s.Opened))
	}
	s.Seen = d
	s.Expired = d >= r.MaxDuration
	r.save(s)
	return s.Opened, r.MaxDuration - d
}

// hold opens the forwards of v and keeps them until the file is removed
// or changed, max_duration ends, the connection fails or ctx ends; nil
// means look at the file again.
func (r *Runner) hold(ctx context.Context, sc *ssh.Client, fc *sftp.Client, v file, since time.Time, left time.Duration, opened *bool) error {
	until := r.Clock.Now().Add(left)
	var wg sync.WaitGroup
	var listeners []net.Listener
	cs := &conns{}
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
		cs.closeAll()
		wg.Wait()
	}()
	for _, f := range []struct {
		port        int
		target, key string
	}{{v.req.Web, r.Web, "web"}, {v.req.Status, r.Status, "status"}} {
		if f.port == 0 {
			continue
		}
		if f.target == "" {
			return errRefused{error: fmt.Errorf("%s: this probe serves no %s page", f.key, f.key)}
		}
		if !onLoopback(f.target) {
			return errRefused{error: fmt.Errorf("%s: %s is not on this device's loopback: the tunnel leads to nothing else", f.key, f.target)}
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(f.port))
		l, err := sc.Listen("tcp", addr)
		if err != nil {
			return errRefused{fmt.Errorf("%s: the server refused to listen on %s (its authorized_keys permitlisten= for this key, sshd's AllowTcpForwarding, or the port is taken): %w", f.key, addr, err), true}
		}
		listeners = append(listeners, l)
		wg.Add(1)
		go func() {
			defer wg.Done()
			serve(l, f.target, cs, &wg)
		}()
	}
	dead := make(chan error, 1)
	go func() { dead <- sc.Wait() }()
	keep := time.NewTicker(Keepalive)
	defer keep.Stop()
	end := r.Clock.After(left)
	check := r.Clock.After(r.CheckInterval)
	*opened = true
	r.set(func(t *fleet.Tunnel) {
		*t = fleet.Tunnel{State: "open", LastCheck: t.LastCheck, Requested: v.written, By: v.req.By, Reason: v.req.Reason,
			WebPort: v.req.Web, StatusPort: v.req.Status, Opened: since, Until: until}
	})
	var fwd []string
	for _, f := range []struct {
		port         int
		target, what string
	}{{v.req.Web, r.Web, "web UI"}, {v.req.Status, r.Status, "status page"}} {
		if f.port != 0 {
			fwd = append(fwd, fmt.Sprintf("server 127.0.0.1:%d → %s %s", f.port, f.what, f.target))
		}
	}
	r.logOnce("tunnel: open until %s, asked by %q (%q) in %s written %s: %s",
		until.UTC().Format(time.RFC3339), v.req.By, v.req.Reason, r.Path, v.written.UTC().Format(time.RFC3339), strings.Join(fwd, ", "))
	r.checked()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-dead:
			return fmt.Errorf("connection to the server lost while the tunnel was open: %v", err)
		case <-keep.C:
			if _, _, err := sc.SendRequest("keepalive@openssh.com", true, nil); err != nil {
				return fmt.Errorf("connection to the server lost while the tunnel was open: %w", err)
			}
		case <-end:
			s := r.load()
			s.Expired, s.Seen = true, max(s.Seen, r.MaxDuration)
			r.save(s)
			r.logOnce("tunnel: closed after tunnel.max_duration %v (asked by %q)", r.MaxDuration, v.req.By)
			return nil
		case <-check:
			check = r.Clock.After(r.CheckInterval)
			now := r.Clock.Now()
			r.set(func(t *fleet.Tunnel) { t.LastCheck = now })
			got, err := r.read(fc)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				r.logOnce("tunnel: closed: %s was removed", r.Path)
				return nil
			case err != nil && !errors.As(err, new(errRefused)):
				return err
			case got.key != v.key:
				r.logOnce("tunnel: %s changed: closing the tunnel it asked for", r.Path)
				return nil
			}
			// Counted on, saved for the next boot; a clock synced since
			// may find the request's time over.
			_, left := r.window(v.key, now)
			if left <= 0 {
				r.logOnce("tunnel: closed after tunnel.max_duration %v (asked by %q)", r.MaxDuration, v.req.By)
				return nil
			}
			end = r.Clock.After(left)
			r.checked()
		}
	}
}

// onLoopback reports whether addr (host:port) is on the loopback.
func onLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

// conns are the connections a tunnel passes on, at most MaxConns from
// the server, and the local ones they lead to: all end with it (a changed
// request goes on over the same SSH connection), also a local target that
// never answers, whose copy would otherwise block the tunnel's close.
type conns struct {
	mu          sync.Mutex
	open, local map[net.Conn]bool
	done        bool
}

func (cs *conns) add(c net.Conn, local bool) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.done || (!local && len(cs.open) >= MaxConns) {
		return false
	}
	if cs.open == nil {
		cs.open, cs.local = map[net.Conn]bool{}, map[net.Conn]bool{}
	}
	if local {
		cs.local[c] = true
	} else {
		cs.open[c] = true
	}
	return true
}

func (cs *conns) remove(c net.Conn) {
	cs.mu.Lock()
	delete(cs.open, c)
	delete(cs.local, c)
	cs.mu.Unlock()
}

func (cs *conns) closeAll() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.done = true
	for _, m := range []map[net.Conn]bool{cs.open, cs.local} {
		for c := range m {
			c.Close()
		}
	}
}

// serve passes each connection to the server's port on to target.
func serve(l net.Listener, target string, cs *conns, wg *sync.WaitGroup) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		if !cs.add(c, false) {
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cs.remove(c)
			pass(c, target, cs)
		}()
	}
}

func pass(c net.Conn, target string, cs *conns) {
	defer c.Close()
	lc, err := net.DialTimeout("tcp", target, dialLocal)
	if err != nil {
		return
	}
	defer lc.Close()
	if !cs.add(lc, true) {
		return
	}
	defer cs.remove(lc)
	done := make(chan struct{}, 2)
	go func() { io.Copy(lc, c); lc.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(c, lc); c.Close(); done <- struct{}{} }()
	<-done
	<-done
}

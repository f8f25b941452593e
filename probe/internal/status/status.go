// Package status is the probe's HTTP status listener: the state as JSON
// (GET /status.json) and as a plain HTML page (GET /), and the
// authenticated trigger endpoint (POST /trigger) that `probe trigger` and
// the provider use, and the installer's checks (POST /check/NAME, see
// Checks).
package status

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/presscap/presscap/probe/internal/fleet"
	"github.com/presscap/presscap/probe/internal/upload"
)

// Snapshot is everything the status page shows. The service fills it.
type Snapshot struct {
	Host string `json:"host"`
	// ID is the probe's stable id (package identity), "" without one.
	ID          string         `json:"id,omitempty"`
	Now         time.Time      `json:"now"`
	Started     time.Time      `json:"started"`
	ClockSynced bool           `json:"clock_synced"`
	Storage     Storage        `json:"storage"`
	Ring        *Ring          `json:"ring,omitempty"`
	Links       []Link         `json:"links"`
	Devices     []Device       `json:"trigger_devices"`
	Pending     []Window       `json:"pending_windows"`
	Presses     []Press        `json:"recent_presses"`
	Upload      *upload.Status `json:"upload,omitempty"`
	Faults      []string       `json:"faults,omitempty"`
	// Checks are the installer's checks' last runs (see Checks).
	Checks []CheckRun `json:"installer_checks,omitempty"`
	// Process is what the probe's process has used since it started.
	Process *Process `json:"process,omitempty"`
	// Tunnel is the provider's remote access (package fleet/tunnel), nil
	// where it is off: the customer sees when the provider is connected.
	Tunnel *fleet.Tunnel `json:"tunnel,omitempty"`
}

// Process is the probe process's own resource use (getrusage), so that the
// CPU a packet costs can be measured where no shell runs, as on gokrazy.
type Process struct {
	// CPUSeconds is user plus system time of all its threads.
	CPUSeconds float64 `json:"cpu_seconds"`
}

// ReadProcess returns the calling process's Process.
func ReadProcess() (Process, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return Process{}, fmt.Errorf("getrusage: %w", err)
	}
	return Process{CPUSeconds: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()}, nil
}

// Storage is the disk's state.
type Storage struct {
	State  string `json:"state"`
	Device string `json:"device,omitempty"`
	Root   string `json:"root,omitempty"`
	Error  string `json:"error,omitempty"`
	// Replaced says which unusable ring was replaced when this one was
	// opened, and why (its packets are lost).
	Replaced string    `json:"replaced,omitempty"`
	Since    time.Time `json:"since"`
}

// Ring is the ring's summary.
type Ring struct {
	Dir    string    `json:"dir"`
	Size   int64     `json:"size"`
	Used   int64     `json:"used"`
	Oldest time.Time `json:"oldest,omitzero"`
	Newest time.Time `json:"newest,omitzero"`
	// Span is how much time the ring holds, newest − oldest (a Go
	// duration): the longest `before` a press can save whole now.
	Span    string `json:"span,omitempty"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	Drops   uint64 `json:"drops"`
}

// Link is one capture link's counters.
type Link struct {
	Name    string `json:"name"`
	Seen    uint64 `json:"seen"`
	Written uint64 `json:"written"`
	Drops   uint64 `json:"drops"`
}

// Device is a trigger device in use.
type Device struct {
	Path    string `json:"path"`
	Name    string `json:"name"`
	Vendor  string `json:"vendor"`
	Product string `json:"product"`
}

// Window is a saved window waiting for its end.
type Window struct {
	ID      int       `json:"id"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Presses int       `json:"presses"`
}

// Press is one recent press and what became of it.
type Press struct {
	Time     time.Time `json:"time"`
	Source   string    `json:"source"`
	Profile  string    `json:"profile,omitempty"` // trigger.profiles
	Synced   bool      `json:"clock_synced"`
	Decision string    `json:"decision"` // opened, extended, ignored
	Window   int       `json:"window"`
	Files    []string  `json:"files,omitempty"`
	Dir      string    `json:"dir,omitempty"`
	Error    string    `json:"error,omitempty"`
	Done     bool      `json:"done"`
	// Truncated: the saved files lack part of the window (Missing, a Go
	// duration), because of Reason (see the manifest's reason).
	Truncated bool   `json:"truncated,omitempty"`
	Missing   string `json:"missing,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// Source is what the server shows and triggers.
type Source interface {
	Snapshot() Snapshot
	// Trigger presses the button of profile (empty: the default) on
	// behalf of source ("http", "local"); an unknown profile is
	// ErrNoProfile.
	Trigger(source, profile string) (Press, error)
}

// ErrNoProfile says a trigger named a profile the configuration lacks.
var ErrNoProfile = errors.New("no such profile")

// Auth decides who may trigger.
type Auth struct {
	Token         string   // Authorization: Bearer TOKEN
	PasswordFiles []string // gokrazy's password, HTTP Basic user "gokrazy"
}

// Password returns gokrazy's password from the first readable file.
func (a Auth) Password() string {
	for _, p := range a.PasswordFiles {
		if b, err := os.ReadFile(p); err == nil {
			if pw := strings.TrimSpace(string(b)); pw != "" {
				return pw
			}
		}
	}
	return ""
}

// allowed reports whether r carries the token or the password, and why not.
func (a Auth) allowed(r *http.Request) (bool, string) {
	pw := a.Password()
	if a.Token == "" && pw == "" {
		return false, "no status.token and no gokrazy password configured: the trigger endpoint is off"
	}
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") && a.Token != "" {
		if subtle.ConstantTimeCompare([]byte(strings.TrimPrefix(h, "Bearer ")), []byte(a.Token)) == 1 {
			return true, ""
		}
	}
	if user, pass, ok := r.BasicAuth(); ok && pw != "" {
		u := subtle.ConstantTimeCompare([]byte(user), []byte("gokrazy"))
		p := subtle.ConstantTimeCompare([]byte(pass), []byte(pw))
		if u&p == 1 {
			return true, ""
		}
	}
	return false, "wrong or missing credentials"
}

// Handler serves the status page, its JSON and the trigger endpoint; a
// POST from another site's page is refused (sameSite).
func Handler(src Source, auth Auth) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(snapshotOf(src))
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := page.Execute(w, snapshotOf(src)); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("POST /trigger", func(w http.ResponseWriter, r *http.Request) {
		if ok, why := auth.allowed(r); !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="presscap"`)
			http.Error(w, why, http.StatusUnauthorized)
			return
		}
		p, err := src.Trigger("http", r.URL.Query().Get("profile"))
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			code := http.StatusServiceUnavailable
			if errors.Is(err, ErrNoProfile) {
				code = http.StatusBadRequest
			}
			w.WriteHeader(code)
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		json.NewEncoder(w).Encode(p)
	})
	if cs, ok := src.(CheckSource); ok && cs.Checks() != nil {
		cs.Checks().routes(mux, src, auth)
	}
	return sameSite(mux)
}

var page = template.Must(template.New("status").Funcs(template.FuncMap{
	"t": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05.000 UTC")
	},
	"mib": func(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) },
}).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>presscap {{.Host}}</title>
<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px;text-align:left}</style>
</head><body>
<h1>presscap on {{.Host}}</h1>
{{if .ID}}<p>Probe id {{.ID}}.</p>{{end}}
<p>Now {{t .Now}}, running since {{t .Started}}. Clock: {{if .ClockSynced}}synced{{else}}<b>not synced</b>{{end}}.{{with .Process}} CPU time used {{printf "%.2f" .CPUSeconds}} s.{{end}}</p>
{{if .Faults}}<h2>Faults</h2><ul>{{range .Faults}}<li><b>{{.}}</b></li>{{end}}</ul>{{end}}
<h2>Disk</h2>
<p>{{.Storage.State}}{{if .Storage.Device}} on {{.Storage.Device}}{{end}}{{if .Storage.Root}}, root {{.Storage.Root}}{{end}}{{if .Storage.Error}}: {{.Storage.Error}}{{end}} (since {{t .Storage.Since}})</p>
{{if .Storage.Replaced}}<p>{{.Storage.Replaced}}</p>{{end}}
<h2>Ring</h2>
{{with .Ring}}<table>
<tr><th>directory</th><td>{{.Dir}}</td></tr>
<tr><th>size</th><td>{{mib .Size}} ({{mib .Used}} used)</td></tr>
<tr><th>oldest packet</th><td>{{t .Oldest}}</td></tr>
<tr><th>newest packet</th><td>{{t .Newest}}</td></tr>
<tr><th>span</th><td>{{if .Span}}{{.Span}} (the longest "before" saved whole now){{else}}-{{end}}</td></tr>
<tr><th>packets</th><td>{{.Packets}}</td></tr>
<tr><th>drops</th><td>{{.Drops}}</td></tr>
</table>{{else}}<p>no ring open</p>{{end}}
<h2>Links</h2>
<table><tr><th>link</th><th>seen</th><th>written</th><th>drops</th></tr>
{{range .Links}}<tr><td>{{.Name}}</td><td>{{.Seen}}</td><td>{{.Written}}</td><td>{{.Drops}}</td></tr>{{end}}
</table>
<h2>Trigger devices</h2>
{{if .Devices}}<ul>{{range .Devices}}<li>{{.Path}}: {{.Name}} ({{.Vendor}}:{{.Product}})</li>{{end}}</ul>{{else}}<p>none seen</p>{{end}}
<h2>Windows waiting for their end</h2>
{{if .Pending}}<ul>{{range .Pending}}<li>#{{.ID}}: {{t .From}} to {{t .To}} ({{.Presses}} presses)</li>{{end}}</ul>{{else}}<p>none</p>{{end}}
<h2>Recent presses</h2>
<table><tr><th>time</th><th>source</th><th>clock</th><th>window</th><th>files</th></tr>
{{range .Presses}}<tr><td>{{t .Time}}</td><td>{{.Source}}</td><td>{{if .Synced}}synced{{else}}unsynced{{end}}</td><td>#{{.Window}} {{.Decision}}</td>
<td>{{if .Error}}<b>{{.Error}}</b>{{else if .Done}}{{if .Truncated}}<b>truncated: {{.Missing}} of the window missing ({{.Reason}})</b><br>{{end}}{{range .Files}}{{.}}<br>{{end}}{{else}}waiting{{end}}</td></tr>{{end}}
</table>
<h2>Upload</h2>
{{with .Upload}}<table>
<tr><th>queue</th><td>{{.Files}} files ({{mib .Bytes}}) in {{.QueueDir}}</td></tr>
<tr><th>server</th><td>{{if .Enabled}}{{.Server}}{{else}}upload disabled (upload.enable){{end}}</td></tr>
<tr><th>next upload</th><td>{{t .NextUpload}}</td></tr>
<tr><th>running</th><td>{{if .Running}}<b>uploading now</b>{{else}}no{{end}}</td></tr>
<tr><th>last attempt</th><td>{{t .LastAttempt}}{{if .LastResult}}: {{.LastResult}}{{end}}</td></tr>
<tr><th>last success</th><td>{{t .LastSuccess}}</td></tr>
<tr><th>last error</th><td>{{if .LastError}}<b>{{.LastError}}</b>{{else}}none{{end}}</td></tr>
<tr><th>public key</th><td>{{if .PublicKey}}<code>{{.PublicKey}}</code><br>(append this line to the upload user's ~/.ssh/authorized_keys on the SFTP server){{else}}-{{end}}</td></tr>
</table>{{else}}<p>no upload configured</p>{{end}}
{{with .Tunnel}}<h2>Remote access</h2>
<p>{{if eq .State "open"}}<b>open</b> for the provider until {{t .Until}}{{if .By}}, asked by {{.By}}{{end}}{{if .Reason}} ({{.Reason}}){{end}}{{else}}{{.State}}{{if .Error}}: {{.Error}}{{end}}{{end}}{{if not .LastCheck.IsZero}} (checked {{t .LastCheck}}){{end}}</p>{{end}}
{{template "checks" .Checks}}
<p><a href="status.json">JSON</a></p>
</body></html>
`))

// Server listens on the configured addresses. "private:PORT" means every
// loopback, private (RFC 1918, fc00::/7) and link-local address of the
// device, looked up again every Rescan, since DHCP may add them late,
// except the link-local addresses of the capture interfaces.
//
// The LAN is not trusted: connections are capped (Limits), requests must
// send their headers within ReadHeaderTimeout and keep them under
// MaxHeaderBytes, idle connections are closed, and a Host that is not the
// probe's is refused (Hosts).
type Server struct {
	Listen  []string
	Handler http.Handler
	Rescan  time.Duration // default 10s
	Logf    func(string, ...any)
	// Hosts are the names requests may carry besides IP literals.
	Hosts Hosts
	// Limits caps the connections; zero fields take DefaultLimits.
	Limits Limits
	// CaptureIfaces are the capture links: "private" does not listen on
	// their link-local addresses, which face the customer's network
	// without belonging to the probe's own address plan.
	CaptureIfaces []string
	// HeaderTimeout is how long a request's headers may take to arrive
	// (default 5s).
	HeaderTimeout time.Duration

	mu        sync.Mutex
	listening map[string]net.Listener
	limiter   *connLimiter
}

// The HTTP server's limits: a request's headers must arrive within
// headerTimeout (unless Server.HeaderTimeout says otherwise) and stay under maxHeaderBytes (Go reads 4 KiB beyond it
// before answering 431), the whole request within readTimeout; a response
// must be written within writeTimeout; an idle keep-alive connection is
// closed after idleTimeout.
const (
	headerTimeout  = 5 * time.Second
	readTimeout    = 30 * time.Second
	writeTimeout   = 60 * time.Second
	idleTimeout    = 30 * time.Second
	maxHeaderBytes = 8 << 10
)

// Addrs returns the addresses being listened on.
func (s *Server) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.listening {
		out = append(out, l.Addr().String())
	}
	return out
}

// Run serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	if s.Logf == nil {
		s.Logf = func(string, ...any) {}
	}
	rescan := s.Rescan
	if rescan <= 0 {
		rescan = 10 * time.Second
	}
	lim := newConnLimiter(s.Limits, s.Logf)
	hdrTimeout := s.HeaderTimeout
	if hdrTimeout <= 0 {
		hdrTimeout = headerTimeout
	}
	s.mu.Lock()
	s.listening = map[string]net.Listener{}
	s.limiter = lim
	s.mu.Unlock()
	srv := &http.Server{
		Handler:           newHostCheck(s.Hosts).wrap(s.Handler),
		ReadHeaderTimeout: hdrTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnState:         lim.trackState,
		ErrorLog:          log.New(logWriter(s.Logf), "status: ", 0),
	}
	var wg sync.WaitGroup
	defer func() {
		srv.Close()
		wg.Wait()
	}()
	t := time.NewTicker(rescan)
	defer t.Stop()
	first := true
	for {
		addrs, err := expand(s.Listen, s.CaptureIfaces)
		if err != nil && first {
			return err
		}
		for _, a := range addrs {
			s.mu.Lock()
			_, ok := s.listening[a]
			s.mu.Unlock()
			if ok {
				continue
			}
			l, err := net.Listen("tcp", a)
			if err != nil {
				if first && !isPrivateWildcard(s.Listen) {
					return fmt.Errorf("status: %w", err)
				}
				s.Logf("status: %v", err)
				continue
			}
			s.Logf("status: listening on http://%s/", l.Addr())
			s.mu.Lock()
			s.listening[a] = l
			s.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := srv.Serve(limitedListener{l, lim}); err != nil && !errors.Is(err, http.ErrServerClosed) {
					s.Logf("status: %s: %v", a, err)
				}
				s.mu.Lock()
				delete(s.listening, a)
				s.mu.Unlock()
			}()
		}
		first = false
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func isPrivateWildcard(listen []string) bool {
	for _, a := range listen {
		if strings.HasPrefix(a, "private:") {
			return true
		}
	}
	return false
}

// logWriter hands the http.Server's own log lines (accept errors) to Logf.
type logWriter func(string, ...any)

func (f logWriter) Write(p []byte) (int, error) {
	f("%s", strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// expand resolves "private:PORT" into the device's private addresses,
// leaving out the link-local addresses of the capture interfaces.
func expand(listen, capture []string) ([]string, error) {
	var out []string
	for _, a := range listen {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("status listen %q: %w", a, err)
		}
		if host != "private" {
			out = append(out, a)
			continue
		}
		ifaces, err := net.Interfaces()
		if err != nil {
			return nil, err
		}
		for _, ifc := range ifaces {
			addrs, _ := ifc.Addrs()
			for _, ad := range addrs {
				ipn, ok := ad.(*net.IPNet)
				if !ok || !IsPrivate(ipn.IP) {
					continue
				}
				if ipn.IP.IsLinkLocalUnicast() && slices.Contains(capture, ifc.Name) {
					continue
				}
				h := ipn.IP.String()
				if ipn.IP.IsLinkLocalUnicast() && ipn.IP.To4() == nil {
					h += "%" + ifc.Name
				}
				out = append(out, net.JoinHostPort(h, port))
			}
		}
	}
	return out, nil
}

// IsPrivate reports whether ip is loopback, RFC 1918, unique-local or
// link-local: reachable only from the customer's own network.
func IsPrivate(ip net.IP) bool {
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast()
}

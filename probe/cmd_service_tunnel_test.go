package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/sshdtest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/internal/fleet"
	"github.com/presscap/presscap/probe/internal/status"
)

// TestRunOpensTunnel: probe run on a gokrazy-like tree finds
// fleet/tunnel/<id> on the server (OpenSSH on loopback) and forwards the
// server's loopback ports to gokrazy's web UI (the port in
// etc/http-port.txt) and to its own status page ("private:PORT"); its
// health report and its status page say the tunnel is open, and who asked.
func TestRunOpensTunnel(t *testing.T) {
	c, root, remote := fleetProbe(t)
	gokrazy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "gokrazy "+r.URL.Path) }))
	defer gokrazy.Close()
	_, gport, _ := net.SplitHostPort(gokrazy.Listener.Addr().String())
	if err := os.WriteFile(filepath.Join(root, "etc", "http-port.txt"), []byte(gport+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, sport, _ := net.SplitHostPort(freeLoopbackAddr(t))
	c.Status.Listen = []string{"private:" + sport}
	c.Tunnel.CheckInterval = config.Duration(10 * time.Second)
	web, stat := sshdtest.FreePort(t), sshdtest.FreePort(t)
	req := filepath.Join(remote, "fleet", "tunnel", "10000000a1b2c3d4")
	os.MkdirAll(filepath.Dir(req), 0o755)
	if err := os.WriteFile(req, []byte(fmt.Sprintf("web=%d\nstatus=%d\nby=carol\nreason=bench\n", web, stat)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, out := startRunIn(t, c, root)
	defer func() {
		if t.Failed() {
			t.Log(out.String())
		}
	}()
	get := func(port int, path string) string {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	testtool.WaitFor(t, "the web UI through the tunnel", 60*time.Second, func() bool { return get(web, "/update/features") == "gokrazy /update/features" })
	// The status page through the tunnel, saying (to the customer too)
	// that the provider's access is open.
	var s status.Snapshot
	if err := json.Unmarshal([]byte(get(stat, "/status.json")), &s); err != nil || s.ID != "10000000a1b2c3d4" ||
		s.Tunnel == nil || s.Tunnel.State != "open" || s.Tunnel.By != "carol" {
		t.Fatalf("status page through the tunnel: %+v (tunnel %+v), %v", s, s.Tunnel, err)
	}
	if page := get(stat, "/"); !strings.Contains(page, "<h2>Remote access</h2>") || !strings.Contains(page, "asked by carol (bench)") {
		t.Errorf("the status page does not show the open tunnel:\n%s", page)
	}
	var rep fleet.Report
	testtool.WaitFor(t, "a report of the open tunnel", 60*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(remote, "fleet", "status", "10000000a1b2c3d4.json"))
		if err != nil {
			return false
		}
		rep, err = fleet.Parse(b)
		return err == nil && rep.Tunnel != nil && rep.Tunnel.State == "open"
	})
	if rep.Tunnel.By != "carol" || rep.Tunnel.WebPort != web || rep.Tunnel.StatusPort != stat {
		t.Errorf("report's tunnel: %+v", rep.Tunnel)
	}
	if !strings.Contains(out.String(), `tunnel: open until`) || !strings.Contains(out.String(), `asked by "carol" ("bench")`) {
		t.Errorf("the log does not say who opened the tunnel")
	}
}

// TestStatusTarget: the tunnel reaches the status page on the device's
// loopback only, at the port of the first listen address served there; a
// listen address on another host (a fleet configuration may set
// status.listen) is never a target.
func TestStatusTarget(t *testing.T) {
	for in, want := range map[string]string{
		"private:8080": "127.0.0.1:8080", ":8080": "127.0.0.1:8080", "localhost:81": "127.0.0.1:81",
		"0.0.0.0:8080": "127.0.0.1:8080", "[::]:8080": "127.0.0.1:8080", "192.168.1.5:8080": "",
		"[::1]:8080": "[::1]:8080", "127.0.0.2:81": "127.0.0.2:81", "[2001:db8::1]:80": "",
	} {
		if got := statusTarget([]string{in}); got != want {
			t.Errorf("statusTarget(%q) = %q, want %q", in, got, want)
		}
	}
	if got := statusTarget(nil); got != "" {
		t.Errorf("no status page: %q", got)
	}
	// The review's case: the customer's router first, then the device's own page.
	if got := statusTarget([]string{"192.168.1.1:80", "private:8080"}); got != "127.0.0.1:8080" {
		t.Errorf("statusTarget(router, private:8080) = %q, want 127.0.0.1:8080", got)
	}
}

// TestWebTarget: the web UI target is gokrazy's port on the loopback; a
// port file that would make it another host is refused.
func TestWebTarget(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "gokr-pw.txt"), []byte("pw\n"), 0o600)
	for port, want := range map[string]string{"8080": "127.0.0.1:8080", "1@192.168.1.1:80": "", "80/x": "", "99999": ""} {
		if err := os.WriteFile(filepath.Join(root, "etc", "http-port.txt"), []byte(port+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := webTarget(root); got != want {
			t.Errorf("http-port.txt %q: webTarget = %q, want %q", port, got, want)
		}
	}
}

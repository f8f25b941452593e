package status

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presscap/presscap/probe/internal/upload"
)

type fakeSource struct{ triggers atomic.Int32 }

const testPublicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq7e5VhP1t0oZ2HIk8i5kq3oKcUe0Yl8aRJ7bWz0o4d presscap@probe-test"

func (f *fakeSource) Snapshot() Snapshot {
	return Snapshot{
		Host: "probe-test", ID: "10000000a1b2c3d4", Now: time.Unix(1700000000, 0), ClockSynced: false,
		Storage: Storage{State: "no disk", Error: "no disk found", Replaced: "replaced the ring in /mnt/ring (old format; its packets are lost)"},
		Ring:    &Ring{Dir: "/mnt/ring", Size: 1 << 30, Packets: 42, Span: "27.5s"},
		Devices: []Device{{Path: "/dev/input/event3", Name: "Logitech USB Receiver", Vendor: "046d", Product: "c52d"}},
		Presses: []Press{{Time: time.Unix(1700000000, 0), Source: "http", Decision: "opened", Window: 1, Files: []string{"a_b_all.pcap"}, Done: true,
			Truncated: true, Missing: "2.5s", Reason: "ring_did_not_reach_back"}},
		Upload: &upload.Status{Enabled: true, Server: "sftp.example.net:22", QueueDir: "/q", Files: 3, NextUpload: time.Unix(1700003600, 0),
			Running: true, LastAttempt: time.Unix(1700000100, 0), LastSuccess: time.Unix(1699990000, 0).UTC(),
			LastResult: "failed: <refused>", LastError: "ssh: unable to authenticate <publickey>",
			PublicKey: testPublicKey},
		Process: &Process{CPUSeconds: 12.345},
	}
}

func (f *fakeSource) Trigger(source, profile string) (Press, error) {
	f.triggers.Add(1)
	if profile == "nosuch" {
		return Press{}, fmt.Errorf("%w: %q", ErrNoProfile, profile)
	}
	return Press{Source: source, Profile: profile, Decision: "opened", Window: 7}, nil
}

func TestPages(t *testing.T) {
	src := &fakeSource{}
	srv := httptest.NewServer(Handler(src, Auth{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"probe-test", "Probe id 10000000a1b2c3d4.", "not synced", "no disk found", "Logitech USB Receiver", "a_b_all.pcap", "2023-11-14 22:13:20.000 UTC", "3 files",
		// The upload section: server, running flag, last attempt and
		// success, the error (escaped) and the key as one copyable line.
		"sftp.example.net:22", "uploading now", "2023-11-14 22:15:00.000 UTC: failed: &lt;refused&gt;", "2023-11-14 19:26:40.000 UTC",
		"<b>ssh: unable to authenticate &lt;publickey&gt;</b>", "<code>" + testPublicKey + "</code>",
		// The ring's span, and a saved window that lacks part of its span.
		"<th>span</th><td>27.5s", "truncated: 2.5s of the window missing (ring_did_not_reach_back)",
		// A saved window is "window #N" (the live recorder is the capture).
		"<h2>Windows waiting for their end</h2>", "<th>window</th>",
		// A ring that could never open again was replaced.
		"<p>replaced the ring in /mnt/ring (old format; its packets are lost)</p>",
		// The process's own CPU time.
		"CPU time used 12.35 s."} {
		if !strings.Contains(string(body), want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	resp, err = http.Get(srv.URL + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var s Snapshot
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"id": "10000000a1b2c3d4"`, `"span": "27.5s"`, `"truncated": true`, `"missing": "2.5s"`, `"reason": "ring_did_not_reach_back"`, `"public_key": "ssh-ed25519 `, `"last_error": "ssh: `, `"running": true`, `"last_success": "2023-11-14T19:26:40Z"`, `"last_attempt": `,
		`"process": {`, `"cpu_seconds": 12.345`} {
		if !strings.Contains(string(raw), key) {
			t.Errorf("JSON lacks %s:\n%s", key, raw)
		}
	}
	if s.Host != "probe-test" || s.Ring.Packets != 42 || s.Storage.State != "no disk" || len(s.Devices) != 1 {
		t.Errorf("JSON = %+v", s)
	}
	if u := s.Upload; u == nil || !u.Running || !u.Enabled || u.PublicKey != testPublicKey || u.LastError != "ssh: unable to authenticate <publickey>" ||
		!u.LastSuccess.Equal(time.Unix(1699990000, 0)) || !u.LastAttempt.Equal(time.Unix(1700000100, 0)) {
		t.Errorf("JSON upload = %+v", s.Upload)
	}
	if r, _ := http.Get(srv.URL + "/trigger"); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /trigger = %d", r.StatusCode)
	}
}

// TestUploadJSONNames: the upload object of status.json keeps its names
// (an API) now that it is the uploader's own Status.
func TestUploadJSONNames(t *testing.T) {
	snap := (&fakeSource{}).Snapshot()
	raw, err := json.Marshal(snap.Upload)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	var got []string
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	want := []string{"bytes", "enabled", "files", "last", "last_attempt", "last_error", "last_success", "next_upload", "public_key", "queue_dir", "running", "server"}
	if !slices.Equal(got, want) {
		t.Errorf("upload JSON names %v, want %v", got, want)
	}
	if m["last"] != "failed: <refused>" || m["queue_dir"] != "/q" {
		t.Errorf("upload JSON = %s", raw)
	}
}

func TestTriggerAuth(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "gokr-pw.txt")
	os.WriteFile(pwFile, []byte("s3cret-pw\n"), 0o400)
	token := "0123456789abcdef0123"
	src := &fakeSource{}
	srv := httptest.NewServer(Handler(src, Auth{Token: token, PasswordFiles: []string{filepath.Join(dir, "missing"), pwFile}}))
	defer srv.Close()
	post := func(set func(*http.Request)) int {
		req, _ := http.NewRequest("POST", srv.URL+"/trigger", nil)
		set(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for name, tc := range map[string]struct {
		set  func(*http.Request)
		want int
	}{
		"none":         {func(*http.Request) {}, 401},
		"wrong token":  {func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") }, 401},
		"token":        {func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }, 200},
		"password":     {func(r *http.Request) { r.SetBasicAuth("gokrazy", "s3cret-pw") }, 200},
		"wrong user":   {func(r *http.Request) { r.SetBasicAuth("root", "s3cret-pw") }, 401},
		"wrong passwd": {func(r *http.Request) { r.SetBasicAuth("gokrazy", "s3cret") }, 401},
		// A page of another site, with the password the browser
		// remembers, must not press; the probe's own page may.
		"foreign Origin": {func(r *http.Request) {
			r.SetBasicAuth("gokrazy", "s3cret-pw")
			r.Header.Set("Origin", "http://evil.example")
		}, 403},
		"Origin null": {func(r *http.Request) {
			r.SetBasicAuth("gokrazy", "s3cret-pw")
			r.Header.Set("Origin", "null")
		}, 403},
		"cross-site fetch": {func(r *http.Request) {
			r.SetBasicAuth("gokrazy", "s3cret-pw")
			r.Header.Set("Sec-Fetch-Site", "cross-site")
		}, 403},
		"own page": {func(r *http.Request) {
			r.SetBasicAuth("gokrazy", "s3cret-pw")
			r.Header.Set("Origin", srv.URL)
			r.Header.Set("Sec-Fetch-Site", "same-origin")
		}, 200},
	} {
		before := src.triggers.Load()
		if got := post(tc.set); got != tc.want {
			t.Errorf("%s: status %d, want %d", name, got, tc.want)
		}
		if fired := src.triggers.Load() != before; fired != (tc.want == 200) {
			t.Errorf("%s: trigger fired = %v", name, fired)
		}
	}

	// ?profile= presses that profile's button; an unknown one is the
	// client's mistake (400), not the service's (503).
	for profile, want := range map[string]int{"phone": 200, "nosuch": 400} {
		req, _ := http.NewRequest("POST", srv.URL+"/trigger?profile="+profile, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p Press
		json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if resp.StatusCode != want || want == 200 && p.Profile != profile {
			t.Errorf("profile %s: status %d, press %+v; want %d", profile, resp.StatusCode, p, want)
		}
	}

	// Nothing configured: the endpoint is off, whatever is sent.
	off := httptest.NewServer(Handler(src, Auth{PasswordFiles: []string{filepath.Join(dir, "missing")}}))
	defer off.Close()
	req, _ := http.NewRequest("POST", off.URL+"/trigger", nil)
	req.SetBasicAuth("gokrazy", "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(body), "trigger endpoint is off") {
		t.Errorf("unconfigured: %d %q", resp.StatusCode, body)
	}
}

func TestServerPrivateIncludesLoopback(t *testing.T) {
	// Find a free port, then listen on "private:PORT".
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{Listen: []string{net.JoinHostPort("private", itoa(port))}, Handler: Handler(&fakeSource{}, Auth{}), Logf: t.Logf}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://127.0.0.1:" + itoa(port) + "/status.json")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not listening on loopback: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, a := range s.Addrs() {
		host, _, _ := net.SplitHostPort(a)
		if ip := net.ParseIP(strings.Split(host, "%")[0]); ip == nil || !IsPrivate(ip) {
			t.Errorf("listening on non-private %s", a)
		}
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Run = %v", err)
	}
}

func TestIsPrivate(t *testing.T) {
	for ip, want := range map[string]bool{"127.0.0.1": true, "10.1.2.3": true, "192.168.0.5": true, "172.16.0.1": true,
		"fd00::1": true, "fe80::1": true, "169.254.1.1": true, "8.8.8.8": false, "2001:db8::1": false, "172.32.0.1": false} {
		if got := IsPrivate(net.ParseIP(ip)); got != want {
			t.Errorf("IsPrivate(%s) = %v", ip, got)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestReadProcess: the process's CPU time agrees with the kernel's own
// account in /proc/self/stat (utime + stime in clock ticks) after the test
// burned some CPU.
func TestReadProcess(t *testing.T) {
	ticks := func() float64 {
		b, err := os.ReadFile("/proc/self/stat")
		if err != nil {
			t.Fatal(err)
		}
		// The fields after the command's closing parenthesis; utime and
		// stime are the stat file's 14th and 15th.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		return (u + s) / 100 // USER_HZ is 100 on Linux
	}
	start := ticks()
	x := 0
	for ticks()-start < 0.3 {
		for i := range 1 << 20 {
			x ^= i
		}
	}
	p, err := ReadProcess()
	if err != nil {
		t.Fatal(err)
	}
	proc := ticks()
	if p.CPUSeconds < 0.3 || p.CPUSeconds < proc-0.05 || p.CPUSeconds > proc+0.05 {
		t.Errorf("cpu_seconds %.3f, /proc/self/stat says %.2f (%d)", p.CPUSeconds, proc, x)
	}
}

package update

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/gokrazyhttp"
	"github.com/presscap/presscap/internal/release"
)

// fakeGokrazy is the device's update API as gokrazy serves it: it keeps
// what each PUT wrote and the order of the calls.
type fakeGokrazy struct {
	mu      sync.Mutex
	calls   []string
	written map[string][]byte
}

func (g *fakeGokrazy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pw, _ := r.BasicAuth(); pw != "device-pw" {
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, r.Method+" "+r.URL.Path)
	switch {
	case r.URL.Path == "/update/features":
		io.WriteString(w, "partuuid,updatehash,gpt,")
	case r.Method == http.MethodPut:
		b, _ := io.ReadAll(r.Body)
		g.written[r.URL.Path] = b
		fmt.Fprintf(w, "%08x", crc32.ChecksumIEEE(b))
	}
}

func (g *fakeGokrazy) log() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.calls...)
}

func (f *fixture) runner(t *testing.T, dev *fakeGokrazy) *Runner {
	srv := httptest.NewServer(dev)
	t.Cleanup(srv.Close)
	return &Runner{
		Puller: *f.puller(t, nil, filepath.Join(t.TempDir(), "release")),
		Connect: func(ctx context.Context, fn func(Remote) error) error {
			return fn(sftpRemote{c: f.connect(t)})
		},
		Channel: "stable", Policy: Policy{}, // any time
		Service: func() State { return State{} },
		Health:  func() Health { return Health{Recording: true, Disk: true} },
		Device:  &gokrazyhttp.Client{BaseURL: srv.URL, Password: "device-pw"},
		Store:   Store{Dir: t.TempDir()}, BootID: "boot-1", ConfirmWithin: 600e9, Logf: t.Logf,
	}
}

// TestRunnerInstallsForTestBoot: a newer release pulled over SFTP is
// written to the inactive root through the device's endpoints (the
// server's bytes, digest checked), the test boot armed (not the switch),
// the trial recorded with what this build shows, then the reboot.
func TestRunnerInstallsForTestBoot(t *testing.T) {
	f := newFixture(t)
	dev := &fakeGokrazy{written: map[string][]byte{}}
	r := f.runner(t, dev)
	m, files := r.Check(context.Background())
	if m == nil {
		t.Fatalf("no release to install; report %+v", r.Report())
	}
	if _, ok := files[release.PartBoot]; ok {
		t.Errorf("a rollback-safe release fetched its boot part: %v", files)
	}
	if err := r.install(context.Background(), m, files); err != nil {
		t.Fatal(err)
	}
	want := "GET /update/features,PUT /update/root,POST /update/testboot,POST /reboot"
	if got := strings.Join(dev.log(), ","); got != want {
		t.Errorf("device calls %s\nwant %s", got, want)
	}
	if string(dev.written["/update/root"]) != string(f.root) {
		t.Errorf("root written: %d bytes, not the release's %d", len(dev.written["/update/root"]), len(f.root))
	}
	rec, err := r.Store.Load()
	if err != nil {
		t.Fatal(err)
	}
	tr := rec.Trial
	if tr == nil || tr.Version != m.Version || tr.From != r.Puller.Running || tr.InstallBoot != "boot-1" ||
		tr.Need != (Health{Recording: true, Disk: true, Server: true}) || tr.ConfirmWithin != 600e9 {
		t.Errorf("trial record %+v", tr)
	}
	if !r.Reached() {
		t.Error("Reached is false after reading the channel")
	}
}

// TestRunnerRefuses: a bad signature, a corrupted part and a release that
// failed here before are refused and reported, and nothing reaches the
// device.
func TestRunnerRefuses(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, r *Runner)
		want  string
	}{
		{"bad signature", func(t *testing.T, r *Runner) {
			_, other, _ := ed25519.GenerateKey(rand.Reader)
			f.publish(t, "presscap", "2026-12-06T22:00:00Z", other)
		}, "signature"},
		{"corrupted part", func(t *testing.T, r *Runner) {
			f.publish(t, "presscap", "2026-12-06T22:00:00Z", f.key)
			bad := append([]byte(nil), f.root...)
			bad[4096] ^= 1
			os.WriteFile(filepath.Join(f.dir, "root.squashfs"), bad, 0o644)
		}, "does not match the manifest"},
		{"failed before", func(t *testing.T, r *Runner) {
			f.publish(t, "presscap", "2026-12-06T22:00:00Z", f.key)
			r.Store.Save(Record{Failed: []Failure{{Version: "2026-12-06T22:00:00Z", Reason: "not healthy within 10m0s"}}})
		}, "failed here before"},
		{"other instance", func(t *testing.T, r *Runner) {
			f.publish(t, "presscap-vm", "2026-12-06T22:00:00Z", f.key)
		}, "another instance"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := &fakeGokrazy{written: map[string][]byte{}}
			r := f.runner(t, dev)
			tc.setup(t, r)
			if m, _ := r.Check(context.Background()); m != nil {
				t.Fatalf("release %s accepted", m.Version)
			}
			rep := r.Report()
			if rep.State != "refused" || rep.Refused == nil || !strings.Contains(rep.Refused.Error, tc.want) {
				t.Errorf("report %+v (refused %+v), want refused with %q", rep, rep.Refused, tc.want)
			}
			if len(dev.log()) != 0 {
				t.Errorf("device was called: %v", dev.log())
			}
		})
	}
}

// TestRunnerRetriesServerOnlyFailure: a release that failed here only
// because the server was not reached is installed once more a day later;
// any other failure, a second one, or one less than a day old is refused.
func TestRunnerRetriesServerOnlyFailure(t *testing.T) {
	f := newFixture(t)
	f.publish(t, "presscap", "2026-12-06T22:00:00Z", f.key)
	for _, tc := range []struct {
		name string
		fail Failure
		want bool
	}{
		{"server only, a day ago", Failure{ServerOnly: true, Tries: 1, Time: time.Now().Add(-25 * time.Hour)}, true},
		{"server only, older record without tries", Failure{ServerOnly: true, Time: time.Now().Add(-25 * time.Hour)}, true},
		{"server only, an hour ago", Failure{ServerOnly: true, Tries: 1, Time: time.Now().Add(-time.Hour)}, false},
		{"server only, failed twice", Failure{ServerOnly: true, Tries: 2, Time: time.Now().Add(-25 * time.Hour)}, false},
		{"recording missing", Failure{Tries: 1, Time: time.Now().Add(-25 * time.Hour)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.runner(t, &fakeGokrazy{written: map[string][]byte{}})
			tc.fail.Version, tc.fail.Reason = "2026-12-06T22:00:00Z", "not healthy within 10m0s of its boot"
			if err := r.Store.Save(Record{Failed: []Failure{tc.fail}}); err != nil {
				t.Fatal(err)
			}
			m, _ := r.Check(context.Background())
			if got := m != nil; got != tc.want {
				t.Errorf("release accepted %v, want %v (report %+v)", got, tc.want, r.Report())
			}
		})
	}
}

// TestRunnerNotInTestBoot: in its test boot gokrazy calls the running
// root inactive, so a confirmed build reboots before it installs the next
// release (nothing is written), and one still on trial waits.
func TestRunnerNotInTestBoot(t *testing.T) {
	f := newFixture(t)
	dev := &fakeGokrazy{written: map[string][]byte{}}
	r := f.runner(t, dev)
	r.TestBoot = func() bool { return true }
	m, files := r.Check(context.Background())
	if m == nil {
		t.Fatalf("no release; report %+v", r.Report())
	}
	if err := r.install(context.Background(), m, files); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(dev.log(), ","); got != "POST /reboot" {
		t.Errorf("confirmed build in its test boot: device calls %s, want only the reboot", got)
	}
	if rec, _ := r.Store.Load(); rec.Trial != nil {
		t.Errorf("a trial was recorded: %+v", rec.Trial)
	}
	r.Store.Save(Record{Trial: &Trial{Version: r.Puller.Running, From: "2026-11-01T00:00:00Z"}})
	dev.calls = nil
	if err := r.install(context.Background(), m, files); err == nil || !strings.Contains(err.Error(), "still on trial") {
		t.Errorf("build on trial: %v", err)
	}
	if len(dev.log()) != 0 {
		t.Errorf("build on trial: device calls %v", dev.log())
	}
}

package upload_test

import (
	"bytes"
	"context"
	"crypto/rand"
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
	"github.com/presscap/presscap/probe/internal/clock"
	"github.com/presscap/presscap/probe/internal/upload"
	"golang.org/x/crypto/ssh"
)

// rig is a server, a queue and a configuration that fit together.
type rig struct {
	srv       *sshdtest.Server
	cfg       upload.Config
	queueDir  string
	stateDir  string
	remoteDir string
	pub       ssh.PublicKey
}

func newRig(t *testing.T, opts sshdtest.Options) *rig {
	t.Helper()
	srv := sshdtest.Start(t, opts)
	r := &rig{srv: srv, queueDir: t.TempDir(), stateDir: t.TempDir(), remoteDir: filepath.Join(srv.Dir, "incoming")}
	if err := os.Mkdir(r.remoteDir, 0o755); err != nil {
		t.Fatal(err)
	}
	signer, line, err := upload.LoadOrCreateKey(filepath.Join(r.stateDir, upload.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	r.pub = signer.PublicKey()
	srv.AuthorizeLine(line)
	cfg := upload.DefaultConfig()
	cfg.Enabled = true
	cfg.Server = srv.Addr()
	cfg.User = "root"
	cfg.RemoteDir = r.remoteDir
	cfg.HostKey = srv.KnownHostsLine()
	cfg.TimeZone = "UTC"
	cfg.ConnectTimeout = field.Duration(10 * time.Second)
	cfg.Retry.Initial = field.Duration(time.Minute)
	cfg.Retry.Max = field.Duration(8 * time.Minute)
	r.cfg = cfg
	return r
}

// renames returns the renames sftp-server logged (Options.SFTPLog).
func (r *rig) renames() []string {
	var out []string
	for _, l := range strings.Split(r.srv.SFTPLog(), "\n") {
		if i := strings.Index(l, "rename old "); i >= 0 {
			out = append(out, l[i:])
		}
	}
	return out
}

// put writes a queue file of n random bytes and returns its content.
func (r *rig) put(t *testing.T, name string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	if err := os.WriteFile(filepath.Join(r.queueDir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// newUploader runs on fc, or on the real clock (always synced) if fc is nil.
func (r *rig) newUploader(t *testing.T, fc *fakeclock.Clock) (*upload.Uploader, *events) {
	t.Helper()
	var (
		tm   clock.Time
		sync clock.Sync
	)
	if fc != nil {
		tm, sync = fc, fc
	}
	u, err := upload.New(r.cfg, r.queueDir, r.stateDir, tm, sync, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	u.OnEvent(ev.add)
	return u, ev
}

// remote lists the server directory.
func (r *rig) remote(t *testing.T) []string {
	t.Helper()
	return names(t, r.remoteDir)
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	return testtool.DirNames(t, dir)
}

func assertFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes differ from the %d bytes queued", path, len(got), len(want))
	}
}

type events struct {
	mu   sync.Mutex
	list []upload.Event
	ch   chan struct{}
}

func (e *events) add(ev upload.Event) {
	e.mu.Lock()
	e.list = append(e.list, ev)
	ch := e.ch
	e.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (e *events) kinds() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.list {
		out = append(out, ev.Kind.String())
	}
	return out
}

func (e *events) count(k upload.EventKind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.list {
		if ev.Kind == k {
			n++
		}
	}
	return n
}

// waitFor polls cond for up to 30 s of real time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testtool.WaitFor(t, what, 30*time.Second, cond)
}

// cutMidFile uploads the queue, whose first file is name (at least 1 MiB),
// at 4 Mbit/s and kills the sshd session once the server holds 256 KiB of
// name's .part. It checks that the attempt failed and left a partial .part,
// and returns the attempt's events. r.cfg is as it was afterwards.
func (r *rig) cutMidFile(t *testing.T, name string) *events {
	t.Helper()
	saved := r.cfg.BandwidthLimitKbps
	defer func() { r.cfg.BandwidthLimitKbps = saved }()
	// Slow enough (1 MiB at 4 Mbit/s = 2 s) to cut in the middle.
	r.cfg.BandwidthLimitKbps = 4000
	u, ev := r.newUploader(t, nil)
	done := make(chan error, 1)
	go func() { done <- u.UploadNow(context.Background()) }()
	part := filepath.Join(r.remoteDir, name+".part")
	waitFor(t, "a partial "+name+".part on the server", func() bool {
		st, err := os.Stat(part)
		return err == nil && st.Size() >= 256<<10
	})
	if n := r.srv.KillSessions(); n == 0 {
		t.Fatal("no sshd session process to kill")
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("upload did not notice the cut connection")
	}
	if err == nil {
		t.Fatal("upload reported success over a cut connection")
	}
	t.Logf("cut: %v", err)
	local, lerr := os.Stat(filepath.Join(r.queueDir, name))
	st, serr := os.Stat(part)
	if lerr != nil || serr != nil || st.Size() >= local.Size() {
		t.Fatalf("expected a partial %s.part after the cut: %v %v", name, lerr, serr)
	}
	return ev
}

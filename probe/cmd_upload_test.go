package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/presscap/presscap/internal/testing/sshdtest"
	"github.com/presscap/presscap/probe/internal/upload"
)

// TestUploadCommand runs `probe upload` -key, -test and -now against a real
// sshd on loopback.
func TestUploadCommand(t *testing.T) {
	srv := sshdtest.Start(t, sshdtest.Options{})
	remote := filepath.Join(srv.Dir, "in")
	os.Mkdir(remote, 0o755)
	state, queue := t.TempDir(), t.TempDir()
	run := func(cfg upload.Config, args ...string) (string, error) {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"upload": cfg, "hostname": "x"})
		path := filepath.Join(t.TempDir(), "probe.json")
		os.WriteFile(path, b, 0o644)
		var out, errb bytes.Buffer
		args = append([]string{"upload", "-config", path, "-state", state}, args...)
		err := dispatch(context.Background(), env{stdout: &out, stderr: &errb}, args)
		return out.String() + errb.String(), err
	}
	cfg := upload.DefaultConfig()
	cfg.Enabled = true
	cfg.Server, cfg.User, cfg.RemoteDir = srv.Addr(), "root", remote
	cfg.HostKey = srv.Fingerprint()

	out, err := run(cfg, "-key")
	if err != nil || !strings.HasPrefix(out, "ssh-ed25519 ") {
		t.Fatalf("-key: %v\n%s", err, out)
	}
	pub := strings.TrimSpace(out)

	// Before the provider installed the key: login fails, named as a step.
	out, err = run(cfg, "-test")
	if err == nil || !strings.Contains(out, "FAIL check host key and log in as root") {
		t.Fatalf("-test with an unknown key: %v\n%s", err, out)
	}
	srv.AuthorizeLine(pub)
	out, err = run(cfg, "-test")
	if err != nil {
		t.Fatalf("-test: %v\n%s", err, out)
	}
	for _, step := range []string{"ok   connect to", "ok   check host key", srv.Fingerprint() + " matches", "ok   find remote_dir", "ok   write ", "ok   read back", "ok   delete", "upload test passed"} {
		if !strings.Contains(out, step) {
			t.Errorf("-test output lacks %q:\n%s", step, out)
		}
	}
	t.Logf("-test output:\n%s", out)
	if entries, _ := os.ReadDir(remote); len(entries) != 0 {
		t.Fatalf("-test left %d files on the server", len(entries))
	}

	data := bytes.Repeat([]byte("pcap"), 10000)
	os.WriteFile(filepath.Join(queue, "x_20261127T020000.000Z_all.pcap"), data, 0o644)
	// Another probe's name (hostname "y") is not this one's to send.
	os.WriteFile(filepath.Join(queue, "y_20261127T020000.000Z_all.pcap"), data, 0o644)
	out, err = run(cfg, "-now", "-queue", queue)
	if err != nil || !strings.Contains(out, "ok: 1 files") {
		t.Fatalf("-now: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(remote, "y_20261127T020000.000Z_all.pcap")); err == nil {
		t.Error("-now sent a file named with another host")
	}
	if got, _ := os.ReadFile(filepath.Join(remote, "x_20261127T020000.000Z_all.pcap")); !bytes.Equal(got, data) {
		t.Fatal("-now: file on the server differs")
	}

	wrong := cfg
	wrong.HostKey = "SHA256:" + strings.Repeat("x", 43)
	out, err = run(wrong, "-test")
	if err == nil || !strings.Contains(out, "host key mismatch") {
		t.Fatalf("-test with a wrong host key: %v\n%s", err, out)
	}
	bad := cfg
	bad.Time = "25:00"
	if _, err := run(bad, "-now"); err == nil || !strings.Contains(err.Error(), "upload.time") {
		t.Fatalf("bad config: %v", err)
	}
}

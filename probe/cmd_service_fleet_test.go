package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/internal/testing/sshdtest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/internal/filenames"
	"github.com/presscap/presscap/probe/internal/fleet"
	"github.com/presscap/presscap/probe/internal/fleet/pwreboot"
	"github.com/presscap/presscap/probe/internal/upload"
)

// TestSetupFleet: the service names its files presscap-<id8>, or the
// configured hostname, with the label the uploader saved; on a gokrazy
// image it creates the device password in /perm without logging it; a
// machine without an id keeps the configured name.
func TestSetupFleet(t *testing.T) {
	root := t.TempDir()
	for p, content := range map[string]string{
		"proc/device-tree/serial-number": "10000000a1b2c3d4\x00",
		"etc/gokr-pw.txt":                "image-password\n",
		"state/fleet-label.json":         `{"id": "10000000a1b2c3d4", "label": "T-4711"}`,
		"perm/.keep":                     "",
		"proc/sys/kernel/random/boot_id": "boot-1\n",
	} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := config.DefaultConfig()
	c.Storage.StateDir = filepath.Join(root, "state")
	var log bytes.Buffer
	logf := func(format string, args ...any) { fmt.Fprintf(&log, format+"\n", args...) }

	// Upload off: no server could learn a password, so none is made.
	if f := setupFleet(c, root, logf); f.password != "" {
		t.Fatal("a device password without upload")
	}
	if _, err := os.Stat(filepath.Join(root, "perm", "gokr-pw.txt")); err == nil {
		t.Fatal("perm/gokr-pw.txt created while upload is off")
	}
	c.Upload.Enabled = true
	f := setupFleet(c, root, logf)
	if f.id.Value != "10000000a1b2c3d4" || f.host != "presscap-a1b2c3d4-T-4711" {
		t.Fatalf("id %v, host %q", f.id, f.host)
	}
	b, err := os.ReadFile(filepath.Join(root, "perm", "gokr-pw.txt"))
	if err != nil || strings.TrimSpace(string(b)) != f.password || len(f.password) != 26 {
		t.Fatalf("device password %q, file %q, %v", f.password, b, err)
	}
	if strings.Contains(log.String(), f.password) {
		t.Fatalf("the device password is in the log:\n%s", log.String())
	}
	// Made in this boot: a reboot is owed in this boot, not in the next.
	if need, err := pwreboot.Needed(c.Storage.StateDir, "boot-1"); !need || err != nil {
		t.Fatalf("no reboot owed for the new password: %v", err)
	}
	if need, _ := pwreboot.Needed(c.Storage.StateDir, "boot-2"); need {
		t.Fatal("a reboot owed in the next boot")
	}

	c.Hostname = "lab-7"
	if f := setupFleet(c, root, logf); f.host != "lab-7-T-4711" || f.password != strings.TrimSpace(string(b)) {
		t.Errorf("configured hostname: host %q, password kept %v", f.host, f.password == strings.TrimSpace(string(b)))
	}
	// A password made earlier still goes into the report when upload is
	// switched off and on again.
	c.Upload.Enabled = false
	if f := setupFleet(c, root, logf); f.password != strings.TrimSpace(string(b)) {
		t.Error("upload off: the existing device password was not read")
	}
	c.Upload.Enabled = true
	os.Remove(filepath.Join(root, "proc/device-tree/serial-number"))
	if f := setupFleet(c, root, logf); f.id.Value != "" || f.host != "lab-7" {
		t.Errorf("no id: %v, host %q", f.id, f.host)
	}
	// No /etc/gokr-pw.txt (not gokrazy: a developer's machine): /perm is
	// not touched.
	other := t.TempDir()
	if f := setupFleet(c, other, logf); f.password != "" {
		t.Error("a password outside gokrazy")
	}
	if _, err := os.Stat(filepath.Join(other, "perm")); err == nil {
		t.Error("created perm/ on a machine without gokrazy's password file")
	}
}

// TestRecentLog: the log's warnings and errors reach the report, the rest
// only the log.
func TestRecentLog(t *testing.T) {
	var out bytes.Buffer
	msgs := &fleet.Recent{}
	l := &recentLog{w: &out, msgs: msgs}
	fmt.Fprint(l, "presscap: recording on eth0\nupload: failed after 0 of 2 files: ssh: ")
	fmt.Fprint(l, "handshake failed\nconfiguration warning: storage.retry: 10ms\n")
	got := msgs.List()
	if len(got) != 2 || got[0].Level != "error" || !strings.HasSuffix(got[0].Text, "handshake failed") || got[1].Level != "warning" {
		t.Fatalf("kept %+v", got)
	}
	if !strings.Contains(out.String(), "recording on eth0") {
		t.Fatalf("the log lost a line: %q", out.String())
	}
}

// TestRunNamesFilesWithIDAndLabel: a service without a configured hostname
// names its capture files, manifest and status page presscap-<id8>, with
// the label the uploader saved for this id.
func TestRunNamesFilesWithIDAndLabel(t *testing.T) {
	pair := netnstest.NewPair(t)
	addr := freeLoopbackAddr(t)
	c := runConfig(t, pair.Host, addr)
	c.Hostname = ""
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc/device-tree"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "proc/device-tree/serial-number"), []byte("10000000a1b2c3d4\x00"), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(c.Storage.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.Storage.StateDir, "fleet-label.json"), []byte(`{"id": "10000000a1b2c3d4", "label": "T-4711"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath, out := startRunIn(t, c, root)
	if !strings.Contains(out.String(), "fleet: probe id 10000000a1b2c3d4 (serial-number)") {
		t.Errorf("the id is not in the log:\n%s", out.String())
	}
	pressTrigger(t, cfgPath)
	waitOutput(t, out, "window #1 saved")
	const host = "presscap-a1b2c3d4-T-4711"
	s := getStatus(t, addr)
	if s.Host != host || s.ID != "10000000a1b2c3d4" || len(s.Presses) != 1 || len(s.Presses[0].Files) == 0 {
		t.Fatalf("status: host %q, presses %+v", s.Host, s.Presses)
	}
	for _, f := range s.Presses[0].Files {
		if !strings.HasPrefix(f, host+"_") || !filenames.Produced(f) {
			t.Errorf("file %s is not named %s_... as the upload sends", f, host)
		}
	}
	mans, _ := filepath.Glob(filepath.Join(s.Presses[0].Dir, host+"_*_manifest.json"))
	if len(mans) != 1 {
		t.Fatalf("manifests in %s: %q", s.Presses[0].Dir, mans)
	}
	b, err := os.ReadFile(mans[0])
	if err != nil {
		t.Fatal(err)
	}
	var man struct {
		Host string `json:"host"`
	}
	if err := json.Unmarshal(b, &man); err != nil || man.Host != host {
		t.Fatalf("manifest host %q (%v)", man.Host, err)
	}
}

// fleetProbe is a probe with id 10000000a1b2c3d4 on a gokrazy-like system
// root (returned), configured to capture a veth and to upload to a real
// OpenSSH server's remote_dir (returned).
func fleetProbe(t *testing.T) (cfg config.Config, root, remoteDir string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs root, namespaces and sshd")
	}
	srv := sshdtest.Start(t, sshdtest.Options{})
	pair := netnstest.NewPair(t)
	c := runConfig(t, pair.Host)
	c.Hostname = ""
	c.Clock.Sync = config.SyncAlways
	root = t.TempDir()
	for p, content := range map[string]string{
		"proc/device-tree/serial-number": "10000000a1b2c3d4\x00",
		"etc/gokr-pw.txt":                "image-password\n",
		"perm/.keep":                     "",
	} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, line, err := upload.LoadOrCreateKey(filepath.Join(c.Storage.StateDir, upload.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	srv.AuthorizeLine(line)
	remote := filepath.Join(srv.Dir, "incoming")
	if err := os.Mkdir(remote, 0o755); err != nil {
		t.Fatal(err)
	}
	c.Upload.Enabled, c.Upload.Server, c.Upload.User, c.Upload.RemoteDir, c.Upload.HostKey = true, srv.Addr(), "root", remote, srv.KnownHostsLine()
	c.Upload.TimeZone = "UTC"
	return c, root, remote
}

// TestRunReports: probe run on a gokrazy-like tree writes its boot report
// to the server (OpenSSH on loopback) with its id, name, configuration
// hash and the device password it made, which is not in the log.
func TestRunReports(t *testing.T) {
	c, root, remote := fleetProbe(t)
	cfgPath, out := startRunIn(t, c, root)

	path := filepath.Join(remote, "fleet", "status", "10000000a1b2c3d4.json")
	var rep fleet.Report
	defer func() {
		if t.Failed() {
			t.Log(out.String())
		}
	}()
	testtool.WaitFor(t, "the boot report on the server", 30*time.Second, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		rep, err = fleet.Parse(b)
		return err == nil
	})
	pw, err := os.ReadFile(filepath.Join(root, "perm", "gokr-pw.txt"))
	if err != nil {
		t.Fatal(err)
	}
	cfgBytes, _ := os.ReadFile(cfgPath)
	sum := sha256.Sum256(cfgBytes)
	if rep.Hostname != "presscap-a1b2c3d4" || rep.IDSource != "serial-number" || rep.DevicePassword != strings.TrimSpace(string(pw)) ||
		rep.Config.Hash != "sha256:"+hex.EncodeToString(sum[:]) || rep.Config.Source != cfgPath || !rep.ClockSynced ||
		len(rep.Links) != 1 || rep.Links[0].State != "up" || !rep.Disk.Present || rep.Disk.SizeBytes <= 0 || rep.LED {
		t.Fatalf("report %+v", rep)
	}
	waitOutput(t, out, "fleet: health report written")
	if strings.Contains(out.String(), rep.DevicePassword) {
		t.Fatalf("the device password is in the log:\n%s", out.String())
	}
}

// TestRunAppliesConfigFromServer: probe run on the image's configuration
// (no -config) finds fleet/config/default.json on the server at its boot
// report, keeps it as /perm/presscap/fleet.json and exits non-zero to be
// restarted; started again it runs on image + fleet layer and its report
// says the server's file is applied, with its hash and source.
func TestRunAppliesConfigFromServer(t *testing.T) {
	c, root, remote := fleetProbe(t)
	t.Setenv(config.EnvVar, "")
	b, _ := json.Marshal(c)
	image := filepath.Join(root, "etc", "presscap", "config.json")
	os.MkdirAll(filepath.Dir(image), 0o755)
	if err := os.WriteFile(image, b, 0o644); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"trigger": {"after": "3s"}}`)
	os.MkdirAll(filepath.Join(remote, "fleet", "config"), 0o755)
	if err := os.WriteFile(filepath.Join(remote, "fleet", "config", "default.json"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- dispatch(context.Background(), env{stdout: out, stderr: out, sysRoot: root}, []string{"run"})
	}()
	select {
	case err := <-done:
		if err == nil || exitCode(err, io.Discard) == 0 || !strings.Contains(err.Error(), "restarting with the configuration from the server") {
			t.Fatalf("run ended with %v, want a restart (non-zero)\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("no restart within 60 s:\n%s", out.String())
	}
	fleetFile := filepath.Join(root, "perm", "presscap", "fleet.json")
	if got, err := os.ReadFile(fleetFile); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("fleet layer %q %v", got, err)
	}

	out = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- dispatch(ctx, env{stdout: out, stderr: out, sysRoot: root}, []string{"run"}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	waitOutput(t, out, "configuration from "+image+" + "+fleetFile)
	path := filepath.Join(remote, "fleet", "status", "10000000a1b2c3d4.json")
	var rep fleet.Report
	testtool.WaitFor(t, "a report with the applied configuration", 30*time.Second, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		rep, err = fleet.Parse(b)
		return err == nil && rep.FleetConfig != nil && rep.FleetConfig.State == "applied"
	})
	sum := sha256.Sum256(body)
	if fc := rep.FleetConfig; fc.Source != "fleet/config/default.json" || fc.Hash != "sha256:"+hex.EncodeToString(sum[:]) || rep.Config.Source != image+" + "+fleetFile {
		t.Fatalf("report: fleet_config %+v, config %+v", fc, rep.Config)
	}
}

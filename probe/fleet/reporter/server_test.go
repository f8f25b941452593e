package reporter

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/presscap/presscap/probe/fleet"
	"github.com/presscap/presscap/probe/status"
	"github.com/presscap/presscap/probe/testtool"
	"github.com/presscap/presscap/probe/upload"
	"github.com/presscap/presscap/probe/upload/sshdtest"
)

// TestReportReachesServer: with the real uploader and OpenSSH, the boot
// report appears as fleet/status/<id>.json with the probe's id, host, the
// label from fleet/labels.json and the device password.
func TestReportReachesServer(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root and sshd")
	}
	srv := sshdtest.Start(t, sshdtest.Options{})
	state := t.TempDir()
	remote := filepath.Join(srv.Dir, "incoming")
	if err := os.MkdirAll(filepath.Join(remote, "fleet"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(remote, "fleet", "labels.json"), []byte(`{"`+id.Value+`": "T-4711"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, line, err := upload.LoadOrCreateKey(filepath.Join(state, upload.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	srv.AuthorizeLine(line)
	cfg := upload.DefaultConfig()
	cfg.Enabled, cfg.Server, cfg.User, cfg.RemoteDir, cfg.HostKey = true, srv.Addr(), "root", remote, srv.KnownHostsLine()
	u, err := upload.New(cfg, t.TempDir(), state, nil, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	u.SetID(id.Value)
	src := &source{snap: status.Snapshot{Host: "presscap-a1b2c3d4", ClockSynced: true, Storage: status.Storage{Root: t.TempDir()}}}
	defer start(&Reporter{ID: id, Source: src, Send: u, DevicePassword: "PW", Logf: t.Logf})()
	path := filepath.Join(remote, "fleet", "status", id.Value+".json")
	var rep fleet.Report
	testtool.WaitFor(t, "the report on the server", 30*time.Second, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		rep, err = fleet.Parse(b)
		return err == nil
	})
	// The label is read on the report's own connection, so the first
	// report may predate it; the uploader has it now.
	if rep.ID != id.Value || rep.Hostname != "presscap-a1b2c3d4" || rep.DevicePassword != "PW" || u.Label() != "T-4711" {
		t.Fatalf("report %+v, label %q", rep, u.Label())
	}
}

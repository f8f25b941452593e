package reporter

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/sshdtest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/internal/fleet"
	"github.com/presscap/presscap/probe/internal/fleet/fleetconfig"
	"github.com/presscap/presscap/probe/internal/status"
	"github.com/presscap/presscap/probe/internal/upload"
)

// serverUploader is the real uploader for this probe's id, logged in to a
// real OpenSSH server whose remote_dir (returned) has a fleet/ directory.
func serverUploader(t *testing.T) (*upload.Uploader, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs root and sshd")
	}
	srv := sshdtest.Start(t, sshdtest.Options{})
	state := t.TempDir()
	remote := filepath.Join(srv.Dir, "incoming")
	if err := os.MkdirAll(filepath.Join(remote, "fleet"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, line, err := upload.LoadOrCreateKey(filepath.Join(state, upload.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	srv.AuthorizeLine(line)
	cfg := upload.DefaultConfig()
	cfg.Enabled, cfg.Server, cfg.User, cfg.RemoteDir, cfg.HostKey = true, srv.Addr(), "root", remote, srv.KnownHostsLine()
	u, err := upload.New(cfg, t.TempDir(), state, nil, nil, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	u.SetID(id.Value)
	return u, remote
}

// TestReportReachesServer: with the real uploader and OpenSSH, the boot
// report appears as fleet/status/<id>.json with the probe's id, host, the
// label from fleet/labels.json and the device password.
func TestReportReachesServer(t *testing.T) {
	u, remote := serverUploader(t)
	if err := os.WriteFile(filepath.Join(remote, "fleet", "labels.json"), []byte(`{"`+id.Value+`": "T-4711"}`), 0o644); err != nil {
		t.Fatal(err)
	}
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

// TestConfigFromServer: over the report's connection to OpenSSH, the
// probe fetches fleet/config/default.json, then its own <id>.json once
// the provider puts one there; each valid one is written to the fleet
// layer and restarts the service, and the next report gives its hash and
// source. An invalid one and one changing upload.* are refused with their
// errors in the report, the last good one staying in force.
func TestConfigFromServer(t *testing.T) {
	u, remote := serverUploader(t)
	dir := t.TempDir()
	image := filepath.Join(dir, "image.json")
	if err := os.WriteFile(image, []byte(`{"exports": [{"name": "all"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	restarts := 0
	r := &Reporter{ID: id, Source: &source{}, Send: u, Logf: t.Logf}
	var a *fleetconfig.Applier
	// boot is the service starting (again) with the fleet layer on /perm.
	boot := func() {
		a = &fleetconfig.Applier{Below: []string{image}, Path: filepath.Join(dir, "fleet.json"),
			Busy: func() bool { return false }, Restart: func() { restarts++ }, Logf: t.Logf}
		a.Start()
		u.SetConfigReceiver(a.Offer)
		r.FleetConfig = a.Report
	}
	boot()
	configDir := filepath.Join(remote, "fleet", "config")
	if err := os.MkdirAll(configDir, 0o755); err != nil {
		t.Fatal(err)
	}
	put := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(configDir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// report sends a report (fetching the configuration on its way) and
	// returns it as the server holds it.
	report := func() fleet.Report {
		t.Helper()
		if err := r.send(context.Background(), status.Snapshot{Now: time.Now()}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(remote, "fleet", "status", id.Value+".json"))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := fleet.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	inForce := func() string {
		b, _ := os.ReadFile(a.Path)
		return string(b)
	}

	if rep := report(); rep.FleetConfig != nil {
		t.Fatalf("first report says %+v before anything was fetched", rep.FleetConfig)
	}
	if rep := report(); rep.FleetConfig == nil || rep.FleetConfig.State != fleetconfig.StateNone {
		t.Fatalf("no file on the server: %+v", rep.FleetConfig)
	}

	def := `{"exports": [{"name": "dns", "filter": "port 53"}]}`
	put("default.json", def)
	report()
	if inForce() != def || restarts != 1 {
		t.Fatalf("default.json not taken: fleet layer %q, %d restarts", inForce(), restarts)
	}
	if rep := report(); rep.FleetConfig == nil || rep.FleetConfig.State != fleetconfig.StatePending || rep.FleetConfig.Source != "fleet/config/default.json" || rep.FleetConfig.Hash != fleetconfig.Hash([]byte(def)) {
		t.Fatalf("report %+v", rep.FleetConfig)
	}
	boot()
	if rep := report(); rep.FleetConfig == nil || rep.FleetConfig.State != fleetconfig.StateApplied || rep.FleetConfig.Source != "fleet/config/default.json" || rep.FleetConfig.Hash != fleetconfig.Hash([]byte(def)) {
		t.Fatalf("report after the restart %+v", rep.FleetConfig)
	}

	own := `{"exports": [{"name": "web", "filter": "tcp port 443"}]}`
	put(id.Value+".json", own)
	report()
	if rep := report(); inForce() != own || rep.FleetConfig.Source != "fleet/config/"+id.Value+".json" || rep.FleetConfig.Hash != fleetconfig.Hash([]byte(own)) {
		t.Fatalf("own file not taken: fleet layer %q, report %+v", inForce(), rep.FleetConfig)
	}
	boot()

	for _, c := range []struct{ body, field string }{
		{`{"exports": [{"name": "bad name", "filter": "port 53"}]}`, "exports[0].name"},
		{`{"exports": [{"name": "web", "filter": "tcp port 443 and"}]}`, "exports[0].filter"},
		{`{"upload": {"server": "elsewhere:22"}}`, "upload.server"},
	} {
		put(id.Value+".json", c.body)
		report()
		rep := report()
		fc := rep.FleetConfig
		if fc == nil || fc.State != fleetconfig.StateRefused || fc.Hash != fleetconfig.Hash([]byte(c.body)) || !strings.Contains(strings.Join(fc.Errors, "\n"), c.field) {
			t.Fatalf("%s: report %+v, want refused naming %s", c.body, fc, c.field)
		}
		if inForce() != own {
			t.Fatalf("%s: fleet layer is now %q", c.body, inForce())
		}
	}
	if restarts != 2 {
		t.Fatalf("%d restarts, want 2", restarts)
	}
}

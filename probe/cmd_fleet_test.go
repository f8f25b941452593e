package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/sshdtest"
	"github.com/presscap/presscap/probe/internal/fleet"
	"github.com/presscap/presscap/probe/internal/fleet/fleettest"
	"github.com/presscap/presscap/probe/internal/upload"
)

// TestFleetCommand: probe fleet prints one line per probe with why it is
// not ok, and -json the same entries.
func TestFleetCommand(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	for i, r := range []fleet.Report{
		{ID: "10000000aaaaaaaa", Hostname: "presscap-aaaaaaaa", ClockSynced: true,
			Disk: fleet.Disk{Present: true, SizeBytes: 100, FreeBytes: 50}, Links: []fleet.Link{{Name: "eth0", State: "up"}}, TriggerDevices: []string{"R400"}},
		{ID: "10000000bbbbbbbb", Label: "T-4711", ClockSynced: true,
			Disk: fleet.Disk{Present: true, SizeBytes: 100, FreeBytes: 50}, Links: []fleet.Link{{Name: "eth1", State: "missing"}}, TriggerDevices: []string{"R400"}},
	} {
		fleettest.Write(t, dir, r, now.Add(-time.Duration(i)*4*24*time.Hour))
	}
	var out, errb bytes.Buffer
	if err := dispatch(context.Background(), env{stdout: &out, stderr: &errb}, []string{"fleet", dir}); err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 lines:\n%s", out.String())
	}
	for i, want := range [][]string{
		{"10000000aaaaaaaa", "presscap-aaaaaaaa", " ok"},
		{"10000000bbbbbbbb", "T-4711", "4 days ago", "fault", "no report for 4 days; link eth1 missing"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("line %q lacks %q", lines[i+1], w)
			}
		}
	}
	out.Reset()
	if err := dispatch(context.Background(), env{stdout: &out, stderr: &errb}, []string{"fleet", "-json", dir}); err != nil {
		t.Fatal(err)
	}
	var entries []fleet.Entry
	if err := json.Unmarshal(out.Bytes(), &entries); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if len(entries) != 2 || entries[1].Health != fleet.Fault || entries[0].Health != fleet.OK {
		t.Fatalf("json: %+v", entries)
	}
	if err := dispatch(context.Background(), env{stdout: &out, stderr: &errb}, []string{"fleet", filepath.Join(dir, "missing")}); err == nil {
		t.Fatal("a missing directory was not an error")
	}
}

// TestFleetCommandOverSFTP: probe fleet sftp://... reads the reports with
// OpenSSH on loopback, pins the host key, keeps the server's times (a stale
// probe stays stale) and reads labels.json; a wrong host key is refused.
func TestFleetCommandOverSFTP(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root and sshd")
	}
	srv := sshdtest.Start(t, sshdtest.Options{})
	keyFile := filepath.Join(t.TempDir(), "id_ed25519")
	_, line, err := upload.LoadOrCreateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv.AuthorizeLine(line)
	remote := filepath.Join(srv.Dir, "incoming")
	status := filepath.Join(remote, "fleet", "status")
	now := time.Now()
	fleettest.Write(t, status, fleet.Report{ID: "10000000aaaaaaaa", ClockSynced: true, Disk: fleet.Disk{Present: true},
		Links: []fleet.Link{{Name: "eth0", State: "up"}}, TriggerDevices: []string{"R400"}}, now.Add(-time.Hour))
	fleettest.Write(t, status, fleet.Report{ID: "10000000bbbbbbbb", ClockSynced: true, Disk: fleet.Disk{Present: true},
		Links: []fleet.Link{{Name: "eth0", State: "up"}}, TriggerDevices: []string{"R400"}}, now.Add(-5*24*time.Hour))
	if err := os.WriteFile(filepath.Join(status, "10000000cccccccc.json.part"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(remote, "fleet", "labels.json"), []byte(`{"10000000bbbbbbbb": "T-9"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	url := "sftp://root@" + srv.Addr() + remote
	var out, errb bytes.Buffer
	err = dispatch(context.Background(), env{stdout: &out, stderr: &errb}, []string{"fleet", "-json", "-key", keyFile, "-host-key", srv.Fingerprint(), url})
	if err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	var entries []fleet.Entry
	if err := json.Unmarshal(out.Bytes(), &entries); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if len(entries) != 2 || entries[0].Health != fleet.OK || entries[1].Health != fleet.Fault ||
		entries[1].Label != "T-9" || !strings.Contains(strings.Join(entries[1].Reasons, ";"), "no report for 5 days") {
		t.Fatalf("entries %+v", entries)
	}
	other := "SHA256:" + strings.Repeat("A", 43)
	err = dispatch(context.Background(), env{stdout: &out, stderr: &errb}, []string{"fleet", "-key", keyFile, "-host-key", other, url})
	if err == nil || !strings.Contains(err.Error(), "host key mismatch") {
		t.Fatalf("a wrong host key gave %v", err)
	}
}

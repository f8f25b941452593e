package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/probe/fleet"
	"github.com/presscap/presscap/probe/fleet/fleettest"
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

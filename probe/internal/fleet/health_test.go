package fleet_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/probe/internal/fleet"
	"github.com/presscap/presscap/probe/internal/fleet/fleettest"
)

var now = time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC)

// healthy is a report with nothing to say.
func healthy(id string) fleet.Report {
	return fleet.Report{
		ID: id, IDSource: "serial-number", Hostname: "presscap-" + id[len(id)-8:],
		Time: now.Add(-time.Hour), ClockSynced: true,
		Disk:           fleet.Disk{Present: true, Model: "SanDisk", SizeBytes: 100e9, FreeBytes: 40e9},
		Links:          []fleet.Link{{Name: "eth0", State: "up"}, {Name: "eth1", State: "up"}},
		TriggerDevices: []string{"Logitech USB Receiver"},
	}
}

// TestReadDirFlags: from sample reports, a stale probe, a full disk and a
// dead link are each flagged with why; a healthy probe is ok; a half-written
// report (.part) is not read; labels.json names a probe.
func TestReadDirFlags(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "fleet", "status")
	full := healthy("1000000000000002")
	full.Disk.FreeBytes = 8e9
	dead := healthy("1000000000000003")
	dead.Links[1].State = "down"
	dead.Links[0].Drops = 17
	dead.TriggerDevices = nil
	fleettest.Write(t, dir, healthy("1000000000000000"), now.Add(-time.Hour))
	fleettest.Write(t, dir, healthy("1000000000000001"), now.Add(-(3*24+5)*time.Hour))
	fleettest.Write(t, dir, full, now.Add(-2*time.Hour))
	fleettest.Write(t, dir, dead, now.Add(-3*time.Hour))
	if err := os.WriteFile(filepath.Join(dir, "1000000000000009.json.part"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "fleet", fleet.LabelsFile), []byte(`{"1000000000000001": "T-4711"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := fleet.ReadDir(root, now)
	if err != nil {
		t.Fatal(err)
	}
	type line struct {
		id, label, health string
		why               []string
	}
	var lines []line
	for _, e := range got {
		lines = append(lines, line{e.ID, e.Label, e.Health, e.Reasons})
	}
	want := []line{
		{"1000000000000000", "", fleet.OK, []string{}},
		{"1000000000000001", "T-4711", fleet.Fault, []string{"no report for 3 days"}},
		{"1000000000000002", "", fleet.Warning, []string{"disk 92 % full"}},
		{"1000000000000003", "", fleet.Fault, []string{"link eth0 dropped 17 packets", "link eth1 down", "presenter not seen since boot"}},
	}
	if !reflect.DeepEqual(lines, want) {
		t.Fatalf("got  %q\nwant %q", lines, want)
	}
}

// TestAssessThresholds: the edges of staleness and disk use.
func TestAssessThresholds(t *testing.T) {
	for _, tc := range []struct {
		age    time.Duration
		free   int64
		health string
	}{
		{fleet.StaleWarning - time.Minute, 11e9, fleet.OK},
		{fleet.StaleWarning, 11e9, fleet.Warning},
		{fleet.StaleFault, 11e9, fleet.Fault},
		{time.Hour, 10e9, fleet.Warning}, // 90 % used
		{time.Hour, 2e9, fleet.Fault},    // 98 %
		{time.Hour, 0, fleet.Fault},
	} {
		r := healthy("1000000000000000")
		r.Disk.FreeBytes = tc.free
		if e := fleet.Assess(r, now.Add(-tc.age), now); e.Health != tc.health {
			t.Errorf("age %s, free %d: %s %q, want %s", tc.age, tc.free, e.Health, e.Reasons, tc.health)
		}
	}
}

// TestReadDirBadReports: a report that does not parse, is of another id or
// of a newer schema is a fault on its own line, not a failure of the list.
func TestReadDirBadReports(t *testing.T) {
	dir := t.TempDir()
	other := healthy("1000000000000005")
	b, _ := other.Marshal()
	for name, content := range map[string][]byte{
		"1000000000000004.json": []byte("not json"),
		"1000000000000006.json": b,
		"1000000000000007.json": []byte(`{"schema": 99, "id": "1000000000000007"}`),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := fleet.ReadDir(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d lines, want 3", len(got))
	}
	for _, e := range got {
		if e.Health != fleet.Fault || len(e.Reasons) != 1 {
			t.Errorf("%s: %s %q, want one fault", e.ID, e.Health, e.Reasons)
		}
	}
}

// TestParseLabelsRefusesBadLabel: a label that cannot go into a file name
// is an error naming the probe.
func TestParseLabelsRefusesBadLabel(t *testing.T) {
	_, err := fleet.ParseLabels([]byte(`{"1000000000000001": "ok-1", "1000000000000002": "../x"}`))
	if err == nil || !strings.Contains(err.Error(), "1000000000000002") {
		t.Fatalf("got %v, want an error naming 1000000000000002", err)
	}
}

// TestRecentKeepsTheLastTen: the report carries the last fleet.MaxMessages.
func TestRecentKeepsTheLastTen(t *testing.T) {
	var r fleet.Recent
	for i := range 15 {
		r.Add(fleet.Message{Level: "error", Text: string(rune('a' + i))})
	}
	l := r.List()
	if len(l) != fleet.MaxMessages || l[0].Text != "f" || l[9].Text != "o" {
		t.Fatalf("got %v", l)
	}
}

// TestAssessRefusedConfig: a configuration from the server that the probe
// refused is a warning naming the file and its first error.
func TestAssessRefusedConfig(t *testing.T) {
	r := healthy("1000000000000000")
	r.FleetConfig = &fleet.FleetConfig{Source: "fleet/config/default.json", State: "applied"}
	if e := fleet.Assess(r, now, now); e.Health != fleet.OK {
		t.Fatalf("applied: %s %q", e.Health, e.Reasons)
	}
	r.FleetConfig = &fleet.FleetConfig{Source: "fleet/config/default.json", State: "refused",
		Errors: []string{"upload.server: not accepted from the server", "trigger.aftr: unknown field"}}
	e := fleet.Assess(r, now, now)
	if e.Health != fleet.Warning || len(e.Reasons) != 1 ||
		e.Reasons[0] != "configuration fleet/config/default.json refused: upload.server: not accepted from the server (and 1 more)" {
		t.Fatalf("refused: %s %q", e.Health, e.Reasons)
	}
}

// TestAssessUpdate: a refused release and a build that rolled back while
// the channel still offers it are warnings; an old failure is not.
func TestAssessUpdate(t *testing.T) {
	r := healthy("1000000000000000")
	r.Update = &fleet.Update{Channel: "stable", State: "current", Offered: "2026-12-06T22:00:00Z"}
	if e := fleet.Assess(r, now, now); e.Health != fleet.OK {
		t.Fatalf("current: %s %q", e.Health, e.Reasons)
	}
	r.Update.State = "refused"
	r.Update.Refused = &fleet.UpdateRefusal{Version: "2026-12-06T22:00:00Z", Error: "manifest signature made by none of the trusted keys"}
	if e := fleet.Assess(r, now, now); e.Health != fleet.Warning || len(e.Reasons) != 1 ||
		e.Reasons[0] != "release 2026-12-06T22:00:00Z refused: manifest signature made by none of the trusted keys" {
		t.Fatalf("refused: %s %q", e.Health, e.Reasons)
	}
	r.Update.Refused.Error = "failed here before (not healthy within 10m0s of its boot: capture not recording): not installed again"
	r.Update.Failed = []fleet.UpdateFailure{{Version: "2026-12-01T00:00:00Z", Reason: "old"}, {Version: "2026-12-06T22:00:00Z", Reason: "not healthy within 10m0s of its boot: capture not recording"}}
	if e := fleet.Assess(r, now, now); e.Health != fleet.Warning || len(e.Reasons) != 1 ||
		e.Reasons[0] != "build 2026-12-06T22:00:00Z rolled back: not healthy within 10m0s of its boot: capture not recording" {
		t.Fatalf("rolled back: %s %q", e.Health, e.Reasons)
	}
	r.Update = &fleet.Update{State: "current", Offered: "2026-12-08T00:00:00Z", Failed: r.Update.Failed}
	if e := fleet.Assess(r, now, now); e.Health != fleet.OK {
		t.Fatalf("old failures: %s %q", e.Health, e.Reasons)
	}
}

// TestAssessTunnel: a tunnel the probe could not open is a warning saying
// why; an open, idle or expired one is not.
func TestAssessTunnel(t *testing.T) {
	r := healthy("1000000000000000")
	for _, s := range []string{"idle", "open", "expired"} {
		r.Tunnel = &fleet.Tunnel{State: s}
		if e := fleet.Assess(r, now, now); e.Health != fleet.OK {
			t.Fatalf("%s: %s %q", s, e.Health, e.Reasons)
		}
	}
	r.Tunnel = &fleet.Tunnel{State: "refused", Error: "web: the server refused to listen on 127.0.0.1:20001"}
	if e := fleet.Assess(r, now, now); e.Health != fleet.Warning || len(e.Reasons) != 1 ||
		e.Reasons[0] != "tunnel refused: web: the server refused to listen on 127.0.0.1:20001" {
		t.Fatalf("refused: %s %q", e.Health, e.Reasons)
	}
}

package upload_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/sshdtest"
	"github.com/presscap/presscap/probe/internal/fleet"
)

// TestWriteStatus: the health report reaches <remote_dir>/fleet/status/<id>.json
// through sshd (directories created, .part renamed away), a second report
// replaces the first, and its fields survive the trip.
func TestWriteStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root and sshd")
	}
	r := newRig(t, sshdtest.Options{SFTPLog: true})
	u, _ := r.newUploader(t, nil)
	at := time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC)
	rep := fleet.Report{
		ID: "10000000a1b2c3d4", IDSource: "serial-number", Hostname: "presscap-a1b2c3d4",
		Time: at, ClockSynced: true, UptimeS: 3600,
		Versions:       fleet.Versions{Image: "2026-12-01T10:00:00Z", Probe: "devel"},
		Disk:           fleet.Disk{Present: true, Model: "SanDisk", SizeBytes: 64e9, FreeBytes: 5e9, RingOldest: at.Add(-48 * time.Hour), RingNewest: at},
		Links:          []fleet.Link{{Name: "eth0", State: "up", Packets: 100, Drops: 2}},
		TriggerDevices: []string{"Logitech USB Receiver"},
		Presses:        []fleet.Press{{Time: at.Add(-time.Hour), Files: []string{"presscap-a1b2c3d4_x_all.pcap"}}},
		Queue:          fleet.Queue{Files: 1, Bytes: 1234},
		Upload:         fleet.Upload{LastResult: "ok: 3 files, 1.0 MB"},
		Config:         fleet.Config{Hash: "sha256:00", Source: "/etc/presscap/config.json"},
		Messages:       []fleet.Message{{Time: at, Level: "warning", Text: "link eth1 down"}},
		DevicePassword: "secret",
	}
	body, err := rep.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := u.WriteStatus(ctx, rep.ID, []byte("old report\n")); err != nil {
		t.Fatal(err)
	}
	if err := u.WriteStatus(ctx, rep.ID, body); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(r.remoteDir, "fleet", "status")
	if got := names(t, dir); !reflect.DeepEqual(got, []string{rep.ID + ".json"}) {
		t.Fatalf("server holds %v, want only %s.json", got, rep.ID)
	}
	b, err := os.ReadFile(filepath.Join(dir, rep.ID+".json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := fleet.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	rep.Schema = fleet.Schema
	if !reflect.DeepEqual(got, rep) {
		t.Fatalf("report changed on the way:\n got %+v\nwant %+v", got, rep)
	}
	want := `rename old "` + filepath.Join(dir, rep.ID+".json.part") + `" new "` + filepath.Join(dir, rep.ID+".json") + `"`
	rn := r.renames()
	if len(rn) != 2 || strings.TrimSpace(rn[0]) != want || strings.TrimSpace(rn[1]) != want {
		t.Fatalf("want two renames %s, sftp-server logged %q", want, rn)
	}
	if err := u.WriteStatus(ctx, "../escape", body); err == nil {
		t.Fatal("an id with a slash was accepted")
	}
}

// TestLabelReadAtConnection: the probe's entry in fleet/labels.json is read
// at each connection (an upload run, a report), kept across a restart,
// kept through a bad edit of the file, and cleared with its entry.
func TestLabelReadAtConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root and sshd")
	}
	r := newRig(t, sshdtest.Options{})
	const id = "10000000a1b2c3d4"
	labels := filepath.Join(r.remoteDir, "fleet", "labels.json")
	if err := os.MkdirAll(filepath.Dir(labels), 0o755); err != nil {
		t.Fatal(err)
	}
	setLabels := func(s string) {
		t.Helper()
		if err := os.WriteFile(labels, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setLabels(`{"10000000ffffffff": "T-1", "` + id + `": "T-4711"}`)
	u, _ := r.newUploader(t, nil)
	u.SetID(id)
	if l := u.Label(); l != "" {
		t.Fatalf("label %q before any connection", l)
	}
	r.put(t, "presscap-a1b2c3d4_20261206T210000.000Z_all.pcap", 1000)
	if err := u.UploadNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	if l := u.Label(); l != "T-4711" {
		t.Fatalf("after an upload run: label %q, want T-4711", l)
	}

	// A restart knows the label before it connects; another id does not.
	u2, _ := r.newUploader(t, nil)
	u2.SetID(id)
	if l := u2.Label(); l != "T-4711" {
		t.Fatalf("after a restart: label %q, want T-4711", l)
	}
	u3, _ := r.newUploader(t, nil)
	u3.SetID("10000000ffffffff")
	if l := u3.Label(); l != "" {
		t.Fatalf("another id took label %q saved for %s", l, id)
	}

	setLabels(`{"` + id + `": "../../etc"}`)
	if err := u2.WriteStatus(context.Background(), id, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if l := u2.Label(); l != "T-4711" {
		t.Fatalf("a bad labels.json changed the label to %q", l)
	}
	setLabels(`{"10000000ffffffff": "T-1"}`)
	if err := u2.WriteStatus(context.Background(), id, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if l := u2.Label(); l != "" {
		t.Fatalf("label %q kept after its entry left labels.json", l)
	}
}

package reporter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/presscap/presscap/probe/internal/devicepw"
	"github.com/presscap/presscap/probe/internal/fleet"
	"github.com/presscap/presscap/probe/internal/identity"
	"github.com/presscap/presscap/probe/internal/status"
	"github.com/presscap/presscap/probe/internal/upload"
)

var id = identity.ID{Value: "10000000a1b2c3d4", Source: identity.SourceSerial}

// source is a service whose snapshot the test sets.
type source struct {
	mu   sync.Mutex
	snap status.Snapshot
}

func (s *source) Snapshot() status.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := s.snap
	snap.Now = time.Now()
	return snap
}

func (s *source) set(fn func(*status.Snapshot)) {
	s.mu.Lock()
	fn(&s.snap)
	s.mu.Unlock()
}

// sender records the reports; fail makes the next writes fail.
type sender struct {
	mu    sync.Mutex
	sent  []fleet.Report
	fail  bool
	label string
}

func (s *sender) WriteStatus(_ context.Context, gotID string, body []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("server down")
	}
	r, err := fleet.Parse(body)
	if err != nil || gotID != r.ID {
		return errors.New("bad report")
	}
	s.sent = append(s.sent, r)
	return nil
}

func (s *sender) Label() string { return s.label }

func (s *sender) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sent)
}

// TestBuild: the report's fields come from the snapshot and the probe;
// counters are since the last report, and a press is reported once, after
// its files are written.
func TestBuild(t *testing.T) {
	sys := t.TempDir()
	for p, c := range map[string]string{
		"proc/uptime": "7261.52 14000.00\n",
		"sys/devices/usb1/block/sda/device/model": "Extreme SSD     \n",
	} {
		os.MkdirAll(filepath.Join(sys, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(sys, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(sys, "sys/devices/usb1/block/sda/sda1"), 0o755)
	os.MkdirAll(filepath.Join(sys, "sys/class/block"), 0o755)
	if err := os.Symlink("../../devices/usb1/block/sda/sda1", filepath.Join(sys, "sys/class/block/sda1")); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	at := time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC)
	snap := status.Snapshot{Host: "presscap-a1b2c3d4", Now: at, ClockSynced: true,
		Storage: status.Storage{State: "recording", Device: "/dev/sda1", Root: root},
		Ring:    &status.Ring{Oldest: at.Add(-30 * time.Hour), Newest: at},
		Links:   []status.Link{{Name: "router", Seen: 1000, Drops: 3}, {Name: "phone", Seen: 10}},
		Devices: []status.Device{{Name: "Logitech USB Receiver"}},
		Presses: []status.Press{
			{Time: at.Add(-time.Hour), Done: true, Files: []string{"a.pcap", "a_manifest.json"}},
			{Time: at.Add(-time.Minute), Done: false},
		},
		Upload: &upload.Status{Files: 2, Bytes: 2048, LastResult: "ok: 1 files, 0.0 MB", LastAttempt: at.Add(-2 * time.Hour)},
	}
	var msgs fleet.Recent
	msgs.Add(fleet.Message{Time: at, Level: "error", Text: "upload: failed"})
	r := &Reporter{ID: id, Send: &sender{label: "T-4711"}, SysRoot: sys, Messages: &msgs,
		Versions: fleet.Versions{Probe: "v1"}, Config: fleet.Config{Hash: "sha256:ab", Source: "/etc/presscap/config.json"},
		DevicePassword: "PW", LED: true,
		Ifaces: map[string]string{"router": "eth0", "phone": "eth1"},
		LinkState: func(iface string) (present, up bool, err error) {
			return iface == "eth0", iface == "eth0", nil
		},
	}
	rep, commit := r.Build(snap)
	if rep.ID != id.Value || rep.IDSource != "serial-number" || rep.Hostname != "presscap-a1b2c3d4" || rep.Label != "T-4711" ||
		rep.UptimeS != 7261 || !rep.ClockSynced || rep.DevicePassword != "PW" || !rep.LED || rep.SoundCard ||
		rep.Config.Hash != "sha256:ab" || rep.Versions.Probe != "v1" || len(rep.Messages) != 1 {
		t.Errorf("report: %+v", rep)
	}
	if d := rep.Disk; !d.Present || d.Model != "Extreme SSD" || d.SizeBytes <= 0 || d.FreeBytes <= 0 || d.FreeBytes > d.SizeBytes ||
		!d.RingOldest.Equal(at.Add(-30*time.Hour)) {
		t.Errorf("disk: %+v", d)
	}
	wantLinks := []fleet.Link{{Name: "router", State: "up", Packets: 1000, Drops: 3}, {Name: "phone", State: "missing", Packets: 10}}
	if !reflect.DeepEqual(rep.Links, wantLinks) {
		t.Errorf("links %+v, want %+v", rep.Links, wantLinks)
	}
	if len(rep.Presses) != 1 || len(rep.Presses[0].Files) != 2 || rep.Queue.Files != 2 || rep.Upload.LastResult == "" {
		t.Errorf("presses %+v, queue %+v, upload %+v", rep.Presses, rep.Queue, rep.Upload)
	}

	// Not committed (the report did not reach the server): the same again.
	again, _ := r.Build(snap)
	if len(again.Presses) != 1 || again.Links[0].Drops != 3 {
		t.Fatalf("an unsent report moved the counters: %+v %+v", again.Presses, again.Links)
	}
	commit()
	snap.Links[0].Seen, snap.Links[0].Drops = 1500, 5
	snap.Presses[1].Done, snap.Presses[1].Files = true, []string{"b.pcap"}
	next, _ := r.Build(snap)
	if next.Links[0].Packets != 500 || next.Links[0].Drops != 2 {
		t.Errorf("since the last report: %+v", next.Links[0])
	}
	if len(next.Presses) != 1 || next.Presses[0].Files[0] != "b.pcap" {
		t.Errorf("presses since the last report: %+v", next.Presses)
	}
	snap.Devices = nil // pulled: still seen since boot
	if d, _ := r.Build(snap); len(d.TriggerDevices) != 1 {
		t.Errorf("trigger devices seen since boot: %q", d.TriggerDevices)
	}
	// A device that comes back under ever new names lists a bounded few.
	for i := range 3 * MaxTriggerDevices {
		snap.Devices = []status.Device{{Name: fmt.Sprintf("presenter %d", i)}}
		r.Build(snap)
	}
	if d, _ := r.Build(snap); len(d.TriggerDevices) != MaxTriggerDevices || d.TriggerDevices[0] != "Logitech USB Receiver" {
		t.Errorf("%d trigger devices listed, want the first %d: %q", len(d.TriggerDevices), MaxTriggerDevices, d.TriggerDevices)
	}
	snap.Devices = nil
	snap.Storage.Root = ""
	if d, _ := r.Build(snap); d.Disk.Present {
		t.Error("no storage root, but a disk present")
	}
}

// start runs r until the returned stop is called.
func start(r *Reporter) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// TestSchedule: no report before the clock is synced until BootWait; one
// once synced; one after each upload attempt; one a day; a failed one is
// tried again after Retry, not at every tick.
func TestSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &source{}
		snd := &sender{}
		defer start(&Reporter{ID: id, Source: src, Send: snd})()
		step := func(d time.Duration) { time.Sleep(d); synctest.Wait() }
		want := func(n int, when string) {
			t.Helper()
			if got := snd.count(); got != n {
				t.Fatalf("%s: %d reports, want %d", when, got, n)
			}
		}
		step(5 * time.Minute)
		want(0, "unsynced, 5 min")
		step(BootWait - 5*time.Minute + Tick)
		want(1, "unsynced, past BootWait")

		src.set(func(s *status.Snapshot) {
			s.Upload = &upload.Status{Running: true, LastAttempt: time.Now()}
		})
		step(Tick)
		want(1, "upload running")
		src.set(func(s *status.Snapshot) { s.Upload.Running = false })
		step(Tick)
		want(2, "upload finished")
		step(10 * Tick)
		want(2, "nothing new")

		snd.mu.Lock()
		snd.fail = true
		snd.mu.Unlock()
		step(Daily - 10*Tick) // a day after the last report
		want(2, "server down")
		snd.mu.Lock()
		snd.fail = false
		snd.mu.Unlock()
		step(Retry / 2)
		want(2, "server back, before the retry time")
		step(Retry/2 + Tick)
		want(3, "retried")
	})
}

// TestFirstReportAfterUpload: a probe whose clock is not synced reports
// after its first upload attempt, not only at BootWait (a press's files
// go before it).
func TestFirstReportAfterUpload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &source{}
		snd := &sender{}
		defer start(&Reporter{ID: id, Source: src, Send: snd})()
		time.Sleep(time.Minute)
		synctest.Wait()
		src.set(func(s *status.Snapshot) { s.Upload = &upload.Status{LastAttempt: time.Now()} })
		time.Sleep(Tick)
		synctest.Wait()
		if snd.count() != 1 {
			t.Fatalf("%d reports after the first upload attempt with the clock unsynced, want 1", snd.count())
		}
	})
}

// TestFirstReportOnceSynced: the boot report goes as soon as the clock is
// synced and the disk in use, not while the disk is still being mounted.
func TestFirstReportOnceSynced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &source{snap: status.Snapshot{ClockSynced: true}}
		snd := &sender{}
		defer start(&Reporter{ID: id, Source: src, Send: snd})()
		time.Sleep(2 * Tick)
		synctest.Wait()
		if snd.count() != 0 {
			t.Fatalf("%d reports before the disk is in use, want 0", snd.count())
		}
		src.set(func(s *status.Snapshot) { s.Storage.Root = "/mnt/usb" })
		time.Sleep(Tick)
		synctest.Wait()
		if snd.count() != 1 {
			t.Fatalf("%d reports with a synced clock and the disk in use, want 1", snd.count())
		}
	})
}

// TestReportSealsPassword: with upload.password_recipient the report
// holds the password only sealed, and the provider's key opens it.
func TestReportSealsPassword(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "provider.key")
	pub, err := devicepw.GenerateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	snap := status.Snapshot{Host: "presscap-a1b2c3d4", Now: time.Now()}
	r := &Reporter{ID: identity.ID{Value: "10000000a1b2c3d4"}, Send: &sender{}, SysRoot: t.TempDir(), DevicePassword: "PW-of-this-probe", PasswordRecipient: pub}
	rep, _ := r.Build(snap)
	b, err := rep.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if rep.DevicePassword != "" || strings.Contains(string(b), "PW-of-this-probe") || rep.DevicePasswordSealed == "" {
		t.Fatalf("report with a recipient: %s", b)
	}
	if pw, err := devicepw.Open(rep.DevicePasswordSealed, keyFile); err != nil || pw != "PW-of-this-probe" {
		t.Fatalf("Open = %q, %v", pw, err)
	}
	r.PasswordRecipient = ""
	if rep, _ := r.Build(snap); rep.DevicePassword != "PW-of-this-probe" || rep.DevicePasswordSealed != "" {
		t.Fatalf("report without a recipient: %+v", rep)
	}
}

// TestReportOnTunnelChange: the tunnel opening, closing or being refused
// is reported at once with its state; a check that finds the same state
// is not.
func TestReportOnTunnelChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &source{snap: status.Snapshot{ClockSynced: true}}
		src.snap.Storage.Root = "/mnt/usb"
		snd := &sender{}
		var mu sync.Mutex
		tun := fleet.Tunnel{State: "idle"}
		setTunnel := func(t fleet.Tunnel) { mu.Lock(); tun = t; mu.Unlock() }
		defer start(&Reporter{ID: id, Source: src, Send: snd, Tunnel: func() *fleet.Tunnel { mu.Lock(); defer mu.Unlock(); c := tun; return &c }})()
		step := func() { time.Sleep(Tick); synctest.Wait() }
		step()
		if snd.count() != 1 || snd.sent[0].Tunnel == nil || snd.sent[0].Tunnel.State != "idle" {
			t.Fatalf("boot report: %d sent, %+v", snd.count(), snd.sent)
		}
		setTunnel(fleet.Tunnel{State: "idle", LastCheck: time.Now()})
		step()
		if snd.count() != 1 {
			t.Fatalf("a check finding no request again made a report")
		}
		opened := time.Now()
		setTunnel(fleet.Tunnel{State: "open", By: "alice", WebPort: 20001, Opened: opened})
		step()
		if snd.count() != 2 || snd.sent[1].Tunnel.State != "open" || snd.sent[1].Tunnel.By != "alice" || snd.sent[1].Tunnel.WebPort != 20001 {
			t.Fatalf("after the tunnel opened: %d reports, last %+v", snd.count(), snd.sent[snd.count()-1].Tunnel)
		}
		step()
		setTunnel(fleet.Tunnel{State: "refused", Error: "web: the server refused to listen on 127.0.0.1:20001"})
		step()
		if snd.count() != 3 || snd.sent[2].Tunnel.Error == "" {
			t.Fatalf("after a refusal: %d reports", snd.count())
		}
	})
}

package fleetconfig

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// applier is an Applier over an image file in a temporary directory, with
// a window state and a restart counter the test controls.
func applier(t *testing.T) (*Applier, *atomic.Bool, *atomic.Int32) {
	t.Helper()
	dir := t.TempDir()
	image := filepath.Join(dir, "image.json")
	if err := os.WriteFile(image, []byte(`{"trigger": {"before": "60s"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	busy, restarts := &atomic.Bool{}, &atomic.Int32{}
	a := &Applier{Below: []string{image}, Above: []string{filepath.Join(dir, "local.json")},
		Path: filepath.Join(dir, "perm", "fleet.json"), Busy: busy.Load,
		Restart: func() { restarts.Add(1) }, Logf: t.Logf}
	a.Start()
	return a, busy, restarts
}

// TestRestartOnlyWithNoWindowOpen: a valid file is kept at once, but the
// service restarts only once no window is open or being saved, and once.
func TestRestartOnlyWithNoWindowOpen(t *testing.T) {
	a, busy, restarts := applier(t)
	busy.Store(true)
	body := []byte(`{"trigger": {"after": "30s"}}`)
	a.Offer("fleet/config/x.json", body, nil)
	if b, err := os.ReadFile(a.Path); err != nil || string(b) != string(body) {
		t.Fatalf("fleet file %q %v", b, err)
	}
	a.Poll()
	if restarts.Load() != 0 {
		t.Fatal("restarted while a window was open")
	}
	if r := a.Report(); r == nil || r.State != StatePending || r.Hash != Hash(body) || r.Source != "fleet/config/x.json" {
		t.Fatalf("report %+v", r)
	}
	busy.Store(false)
	a.Poll()
	a.Poll()
	if restarts.Load() != 1 {
		t.Fatalf("%d restarts with no window open, want 1", restarts.Load())
	}

	// After the restart: in force, with where it came from.
	b, _, _ := applier(t)
	b.Path = a.Path
	b.Start()
	if r := b.Report(); r == nil || r.State != StateApplied || r.Hash != Hash(body) || r.Source != "fleet/config/x.json" {
		t.Fatalf("report after the restart %+v", r)
	}
	b.Offer("fleet/config/x.json", body, nil)
	b.Poll()
	if r := b.Report(); r.State != StateApplied {
		t.Fatalf("the same file again: %+v", r)
	}

	// The same bytes under another name: no restart, the new source kept.
	b.Offer("fleet/config/default.json", body, nil)
	c, _, restartsC := applier(t)
	c.Path = a.Path
	c.Start()
	if r := c.Report(); r.State != StateApplied || r.Source != "fleet/config/default.json" || restarts.Load() != 1 || restartsC.Load() != 0 {
		t.Fatalf("renamed on the server: %+v", r)
	}
}

// TestRefused: an invalid file, one touching upload.*, and one too large
// are refused with their errors by field; the file in force stays and no
// restart is asked for.
func TestRefused(t *testing.T) {
	a, _, restarts := applier(t)
	good := []byte(`{"trigger": {"after": "30s"}}`)
	a.Offer("fleet/config/default.json", good, nil)
	for _, c := range []struct {
		body string
		want []string
	}{
		{`{"trigger": {"after": "-5s"}, "exports": [{"name": "a b"}]}`, []string{"trigger.after", "exports[0].name"}},
		{`{"upload": {"server": "other:22"}, "trigger": {"after": "40s"}}`, []string{"upload.server", "release key"}},
		{`{"trigger": {"aftr": "1s"}}`, []string{"trigger.aftr"}},
	} {
		a.Offer("fleet/config/x.json", []byte(c.body), nil)
		r := a.Report()
		if r == nil || r.State != StateRefused || r.Hash != Hash([]byte(c.body)) || r.Source != "fleet/config/x.json" {
			t.Fatalf("%s: report %+v", c.body, r)
		}
		all := strings.Join(r.Errors, "\n")
		for _, w := range c.want {
			if !strings.Contains(all, w) {
				t.Errorf("%s: errors %q do not name %s", c.body, r.Errors, w)
			}
		}
		if b, _ := os.ReadFile(a.Path); string(b) != string(good) {
			t.Fatalf("%s: fleet file is now %q", c.body, b)
		}
	}
	a.Offer("fleet/config/x.json", nil, os.ErrInvalid)
	if r := a.Report(); r.State != StateRefused || len(r.Errors) != 1 {
		t.Fatalf("unreadable: %+v", r)
	}
	if restarts.Load() != 1 {
		t.Fatalf("%d restarts, want 1 (for the good file)", restarts.Load())
	}
}

// TestRemovedOnServer: when the server no longer has a file for the probe,
// the fleet layer goes and the service restarts without it.
func TestRemovedOnServer(t *testing.T) {
	a, _, restarts := applier(t)
	a.Offer("", nil, nil)
	if r := a.Report(); r == nil || r.State != StateNone || restarts.Load() != 0 {
		t.Fatalf("nothing on the server: %+v, %d restarts", r, restarts.Load())
	}
	a.Offer("fleet/config/default.json", []byte(`{"hostname": "h"}`), nil)
	b, _, restartsB := applier(t)
	b.Path = a.Path
	b.Start()
	b.Offer("", nil, nil)
	if _, err := os.Stat(a.Path); !os.IsNotExist(err) || restartsB.Load() != 1 {
		t.Fatalf("fleet file still there (%v) or %d restarts", err, restartsB.Load())
	}
}

// TestRefusesModeAgainstDHCP: the server may not set network.* yet, but
// the stack a file joins is checked against the image's DHCP client as
// the service checks it: with a local edit in mirror mode on an image
// whose DHCP client runs on the bridge, a file is refused naming
// network.mode, and a file is applied when the client's interface
// is unknown.
func TestRefusesModeAgainstDHCP(t *testing.T) {
	a, _, _ := applier(t)
	if err := os.WriteFile(a.Above[0], []byte(`{"network": {"mode": "mirror", "ports": [{"interface": "eth1"}]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"trigger": {"after": "30s"}}`)
	a.DHCP = "br0"
	a.Offer("fleet/config/default.json", body, nil)
	if r := a.Report(); r == nil || r.State != StateRefused || !strings.Contains(strings.Join(r.Errors, "\n"), `network.mode: "mirror": the image's DHCP client runs on br0`) {
		t.Fatalf("with DHCP on br0 and a local edit in mirror mode: %+v", r)
	}
	if _, err := os.Stat(a.Path); !os.IsNotExist(err) {
		t.Fatalf("the refused file was kept: %v", err)
	}
	a.DHCP = ""
	a.Offer("fleet/config/default.json", []byte(`{"trigger": {"after": "31s"}}`), nil)
	if r := a.Report(); r == nil || r.State == StateRefused {
		t.Fatalf("with the DHCP interface unknown: %+v", r)
	}
}

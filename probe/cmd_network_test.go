package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/netnstest"
)

// TestNetworkCommandInline: `probe network -watch` run in a namespace
// with two cabled ports makes the bridge, reports link loss on the phone's
// side, and when it is killed the bridge stays with both ports.
func TestNetworkCommandInline(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root and network namespaces")
	}
	probe, _, phone := netnstest.InlineTopology(t)
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(`{"network": {"mode": "inline", "ports": [{"interface": "eth0", "side": "router"}, {"interface": "eth1", "side": "phone"}]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// TestRingCrashChild runs any subcommand in a child process.
	cmd, _, stdout := startChild(t, probe, "TestRingCrashChild", "PRESSCAP_CRASH_CHILD="+strings.Join([]string{"network", "-config", cfg, "-watch"}, "\x1f"))
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := netnstest.Follow(stdout)
	lines.Expect(t, "network: inline mode: br0 over eth0, eth1")
	lines.Expect(t, "eth0 up", "eth1 up")
	netnstest.Run(t, "ip", "-n", phone, "link", "set", "eth0", "down")
	lines.Expect(t, "eth1 down")

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	out := netnstest.Run(t, "ip", "-n", probe, "-j", "link", "show")
	var links []struct {
		Name   string   `json:"ifname"`
		Master string   `json:"master"`
		Flags  []string `json:"flags"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		t.Fatal(err)
	}
	masters := map[string]string{}
	for _, l := range links {
		masters[l.Name] = l.Master
		if l.Name == "br0" && !slices.Contains(l.Flags, "UP") {
			t.Errorf("br0 after the kill: flags %v, not UP", l.Flags)
		}
	}
	if _, ok := masters["br0"]; !ok || masters["eth0"] != "br0" || masters["eth1"] != "br0" {
		t.Errorf("after the kill: %s", out)
	}
}

func TestNetworkCommandBadConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(`{"network": {"mode": "inline", "ports": [{"interface": "eth0"}]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := runCmd(t, "network", "-config", cfg)
	if err == nil || !strings.Contains(err.Error(), "network.ports") {
		t.Errorf("probe network with one inline port: %v, want an error naming network.ports", err)
	}
}

// TestLinkEventsBeforeService: the link changes seen before the service
// exists reach it, in order, when it attaches, and later ones directly; a
// nil carrier drops them.
func TestLinkEventsBeforeService(t *testing.T) {
	var l linkEvents
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l.event("eth1", false, t0)
	l.event("eth1", true, t0.Add(time.Second))
	var got []string
	l.attach(func(port string, up bool, at time.Time) {
		got = append(got, fmt.Sprintf("%s %v %s", port, up, at.Sub(t0)))
	})
	l.event("eth0", false, t0.Add(2*time.Second))
	if want := "[eth1 false 0s eth1 true 1s eth0 false 2s]"; fmt.Sprint(got) != want {
		t.Errorf("events %v, want %s", got, want)
	}
	var none *linkEvents
	none.event("eth0", true, t0) // must not panic
}

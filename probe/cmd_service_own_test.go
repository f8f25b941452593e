package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/internal/testing/sshdtest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/internal/upload"
)

// TestRunInlineOwnTrafficNotRecorded: `probe run` inline between a router
// running OpenSSH and a phone. The probe uploads its first capture to the
// router's SFTP server through the bridge and the phone fetches its status
// page; a second press whose window holds both saves none of it
// (network.record_own off), while tcpdump on the cable ends saw both in
// that window.
func TestRunInlineOwnTrafficNotRecorded(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root, network namespaces, tcpdump and sshd")
	}
	netnstest.Require(t, "ip", "tcpdump")
	probe, router, phone := netnstest.InlineTopology(t)
	netnstest.Run(t, "ip", "-n", probe, "link", "set", "lo", "up")
	netnstest.Run(t, "ip", "-n", router, "addr", "add", "192.168.77.1/24", "dev", "lan")
	srv := sshdtest.Start(t, sshdtest.Options{Namespace: router, Address: "192.168.77.1"})

	c := runConfig(t, "", "0.0.0.0:8765")
	c.Links = nil
	c.Network = config.Network{Mode: config.ModeInline, Ports: []config.Port{{Interface: "eth0", Side: "router"}, {Interface: "eth1", Side: "phone"}}}
	// The second press's window reaches back over the first upload.
	c.Trigger.Before = config.Duration(20 * time.Second)
	c.Trigger.After = config.Duration(time.Second)
	c.Trigger.Repeat = config.RepeatSeparate
	_, key, err := upload.LoadOrCreateKey(filepath.Join(c.Storage.StateDir, upload.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	srv.AuthorizeLine(key)
	remote := filepath.Join(srv.Dir, "incoming")
	if err := os.Mkdir(remote, 0o755); err != nil {
		t.Fatal(err)
	}
	c.Storage.Output = "queue"
	c.Upload.Enabled, c.Upload.Server, c.Upload.User, c.Upload.RemoteDir, c.Upload.HostKey = true, srv.Addr(), "root", remote, srv.KnownHostsLine()
	c.Upload.AfterCapture = true
	c.Upload.TimeZone = "UTC"
	cfgPath := writeConfig(t, c)

	brMAC := macOf(t, probe, "eth0") // the bridge takes its first port's address
	run := startRunHelper(t, probe, cfgPath)
	run.expect(t, "recording on", "network: port eth0 up", "network: port eth1 up")
	netnstest.Run(t, "ip", "-n", probe, "addr", "add", "192.168.77.2/24", "dev", "br0")
	netnstest.Run(t, "ip", "-n", phone, "addr", "add", "192.168.77.3/24", "dev", "eth0")
	sftpPort := strconv.Itoa(srv.Port)
	atRouter := netnstest.StartTcpdumpIn(t, router, "lan", 256, "tcp port "+sftpPort)
	atPhone := netnstest.StartTcpdumpIn(t, phone, "eth0", 256, "tcp port 8765")

	uploaded := func(n int) func() bool {
		return func() bool {
			ms, _ := filepath.Glob(filepath.Join(remote, "*_manifest.json"))
			u := run.status(t).Upload
			return len(ms) == n && u != nil && !u.Running && u.Files == 0 && u.LastError == ""
		}
	}
	run.press(t)
	run.expect(t, "window #1 saved")
	testtool.WaitFor(t, "the first window on the router's SFTP server", time.Minute, uploaded(1))

	// The phone fetches the status page through the bridge.
	fetchStatusIn(t, phone, "192.168.77.2:8765")

	run.press(t)
	run.expect(t, "window #2 saved")
	testtool.WaitFor(t, "the second window on the router's SFTP server", time.Minute, uploaded(2))

	// The second window, and what the cable ends saw of the upload and of
	// the status page in it.
	var from, to time.Time
	ms, _ := filepath.Glob(filepath.Join(remote, "*_manifest.json"))
	for _, m := range ms {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		var man struct {
			From time.Time `json:"window_from"`
			To   time.Time `json:"window_to"`
		}
		if err := json.Unmarshal(b, &man); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if man.From.After(from) {
			from, to = man.From, man.To
		}
	}
	inWindow := func(ps []netnstest.Packet) int {
		n := 0
		for _, p := range ps {
			if ts := time.Unix(0, p.Time); !ts.Before(from) && !ts.After(to) {
				n++
			}
		}
		return n
	}
	sftp, statusPage := inWindow(atRouter.Stop(t)), inWindow(atPhone.Stop(t))
	if sftp < 10 || statusPage < 5 {
		t.Fatalf("in the window %s–%s the router's end saw %d SFTP frames, the phone's %d of the status page: the test shows nothing",
			from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano), sftp, statusPage)
	}

	// Neither capture holds a frame to or from the probe, on the SFTP
	// server's port or the status page's.
	fields := strings.TrimSpace(tsharkFields(t, remote, "all", "eth.src", "eth.dst", "tcp.port"))
	if fields == "" {
		t.Fatal("the saved windows hold no frame at all")
	}
	for _, line := range strings.Split(fields, "\n") {
		f := strings.Split(line, "\t")
		for _, mac := range f[:2] {
			if m, _ := net.ParseMAC(mac); bytes.Equal(m, brMAC) {
				t.Errorf("the probe's own frame was recorded: %q", line)
			}
		}
		if len(f) > 2 {
			for _, p := range strings.Split(f[2], ",") {
				if p == sftpPort || p == "8765" {
					t.Errorf("a frame of the probe's upload or status page was recorded: %q", line)
				}
			}
		}
	}
	t.Logf("window %s–%s: %d SFTP and %d status page frames crossed the router's and phone's ends, none recorded",
		from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano), sftp, statusPage)
}

package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/config"
)

// TestRunMirror is `probe run` in mirror mode on two ports fed by a
// switch's mirror ports (a namespace at the far end of two veth pairs): the
// service brings the ports up promiscuous with no address, records what
// each receives, and a press saves exactly the frames tcpdump saw on the
// two ports, byte for byte, each on the interface of its port; the two
// ports share a side, whose export holds the frames of both.
func TestRunMirror(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root, network namespaces and tcpdump")
	}
	netnstest.Require(t, "ip", "tcpdump", "sysctl")
	probe, sw := netnstest.NewNamespace(t), netnstest.NewNamespace(t)
	for _, cable := range [][2]string{{"mir0", "eth1"}, {"mir1", "eth2"}} {
		netnstest.Cable(t, sw, cable[0], probe, cable[1])
		netnstest.Run(t, "ip", "netns", "exec", sw, "sysctl", "-q", "-w", "net.ipv6.conf."+cable[0]+".disable_ipv6=1")
		netnstest.Run(t, "ip", "-n", sw, "link", "set", cable[0], "up")
	}

	c := runConfig(t, "", helperStatus)
	c.Links = nil
	c.Network = config.Network{Mode: config.ModeMirror, Ports: []config.Port{{Interface: "eth1", Side: "tap"}, {Interface: "eth2", Side: "tap"}}}
	c.Trigger.Before = config.Duration(time.Second)
	c.Trigger.After = config.Duration(3 * time.Second)
	// pcapng, to tell the ports apart (mirror mode's default is pcap).
	for i := range c.Exports {
		c.Exports[i].Format = "pcapng"
	}
	c.Exports = append(c.Exports, config.Export{Name: "tap", Link: "tap"})
	cfgPath := writeConfig(t, c)
	run := startRunHelper(t, probe, cfgPath)
	run.expect(t, "recording on", "network: mirror mode over [eth1 eth2]", "network: port eth1 up", "network: port eth2 up")
	for _, p := range []string{"eth1", "eth2"} {
		l := netnstest.Run(t, "ip", "-n", probe, "-o", "addr", "show", "dev", p)
		if strings.Contains(l, "inet") {
			t.Errorf("mirror port %s has an address: %s", p, l)
		}
		if l := netnstest.Run(t, "ip", "-n", probe, "-o", "link", "show", "dev", p); !strings.Contains(l, "PROMISC") {
			t.Errorf("mirror port %s is not promiscuous: %s", p, l)
		}
	}

	in0, in1 := netnstest.NewSenderIn(t, sw, "mir0"), netnstest.NewSenderIn(t, sw, "mir1")
	// Frames until the capture has seen some on each port, then a quiet
	// while longer than the window's before: the window holds only what
	// the ports' tcpdumps see.
	warm := netnstest.Frames(1)[0]
	warm[0] = 0x04 // not one of the frames sent below, nor a group address
	testtool.WaitFor(t, "the capture on both ports", time.Minute, func() bool {
		in0.Send(warm)
		in1.Send(warm)
		seen := map[string]uint64{}
		for _, l := range run.status(t).Links {
			seen[l.Name] = l.Seen
		}
		return seen["eth1"] > 0 && seen["eth2"] > 0
	})
	at1 := netnstest.StartTcpdumpIn(t, probe, "eth1", 2048, "")
	at2 := netnstest.StartTcpdumpIn(t, probe, "eth2", 2048, "")
	time.Sleep(c.Trigger.Before.D() + time.Second)
	run.press(t)
	frames := netnstest.Frames(80)
	if err := in0.Send(frames[:40]...); err != nil {
		t.Fatal(err)
	}
	if err := in1.Send(frames[40:]...); err != nil {
		t.Fatal(err)
	}
	seen := append(at1.Settle(t, netnstest.HasFrame(39)), at2.Settle(t, netnstest.HasFrame(79))...)
	run.expect(t, "window #1 saved")

	var want []string
	for _, p := range seen {
		want = append(want, hex.EncodeToString(p.Data))
	}
	slices.Sort(want)
	saved := savedFrames(t, c.Storage.PermDir, "all")
	if !slices.Equal(saved, want) {
		t.Errorf("the press saved %d frames, tcpdump on the two ports saw %d: %s", len(saved), len(want), firstDifference(saved, want))
	}
	if len(saved) < len(frames) {
		t.Errorf("saved %d frames, sent %d", len(saved), len(frames))
	}
	if tap := savedFrames(t, c.Storage.PermDir, "tap"); !slices.Equal(tap, saved) {
		t.Errorf("the side's export holds %d frames, the whole export %d", len(tap), len(saved))
	}
	// Each frame is on the interface of the port it arrived on.
	for _, line := range strings.Split(strings.TrimSpace(tsharkFields(t, c.Storage.PermDir, "all", "eth.src", "frame.interface_name")), "\n") {
		f := strings.Split(line, "\t")
		src, err := net.ParseMAC(f[0])
		if err != nil || len(f) != 2 {
			t.Fatalf("tshark line %q", line)
		}
		id := int(src[4])<<8 | int(src[5]) // as netnstest.Frames numbers them
		want := "eth1"
		if id >= 40 {
			want = "eth2"
		}
		if f[1] != want {
			t.Errorf("frame %d on interface %q, want %q", id, f[1], want)
		}
	}
	var man struct {
		Links []struct{ Name, Side string } `json:"links"`
	}
	if err := json.Unmarshal(readManifest(t, c.Storage.PermDir), &man); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(man.Links) != "[{eth1 tap} {eth2 tap}]" {
		t.Errorf("manifest links %v, want eth1 and eth2 on side tap", man.Links)
	}
}

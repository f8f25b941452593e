// Command benchinline is `make bench-inline`: forwarding through the inline
// bridge with the capture off and on, against a plain kernel bridge with
// and without `tcpdump -i` on a port, in one run.
//
// Three namespaces it creates: a sender ("router", lan), the probe (eth0
// and eth1, the bridge br0 between them) and a receiver ("phone", eth0),
// joined by veth pairs. Each row builds its bridge, starts its capture
// (pinned to CPU 1), then measures iperf3 TCP from router to phone and a
// trafgen flood of 64-byte UDP frames (pinned to CPU 0), and reports the
// TCP rate, the frames the flood forwarded, and for the capture: the frames
// that crossed the bridge in either direction (the receiving ends'
// counters), those the tool wrote (counted by reading its output), the
// loss, its CPU seconds, CPU per crossing frame and peak RSS.
//
// Needs root and the packages iproute2, iperf3, netsniff-ng (trafgen),
// tcpdump, util-linux (taskset) and time.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/presscap/presscap/internal/bench/benchtool"
)

const snap = "128" // both tools keep the headers: the disk is not what is measured

func main() {
	probe := flag.String("probe", "", "probe binary (required)")
	secs := flag.Int("seconds", 3, "length of the iperf3 run")
	flood := flag.Int("flood", 1500000, "frames trafgen sends")
	rounds := flag.Int("rounds", 2, "times each configuration runs, alternating (the machine is noisy)")
	flag.Parse()
	if *probe == "" {
		fmt.Fprintln(os.Stderr, "benchinline: -probe is required")
		os.Exit(2)
	}
	b := &bench{probe: *probe, seconds: *secs, flood: *flood, rounds: *rounds}
	err := b.run()
	b.cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchinline:", err)
		os.Exit(1)
	}
}

type bench struct {
	probe                  string
	seconds, flood, rounds int
	runs                   int
	dir                    string
	router, probeNS, phone string
	server                 *exec.Cmd
}

// row is one configuration's result.
type row struct {
	bridge, capture     string
	tcpGbps             float64
	floodSent, floodFwd uint64
	floodSecs           float64
	crossed, written    uint64
	cpuSecs             float64
	rssMiB              float64
}

func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (b *bench) cleanup() {
	if b.server != nil {
		b.server.Process.Kill()
		b.server.Wait()
	}
	for _, ns := range []string{b.router, b.probeNS, b.phone} {
		if ns != "" {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	}
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

func (b *bench) run() error {
	for _, p := range []string{"ip", "iperf3", "trafgen", "tcpdump", "taskset", "/usr/bin/time"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("%s not found (packages iproute2, iperf3, netsniff-ng, tcpdump, util-linux, time)", p)
		}
	}
	var err error
	if b.dir, err = os.MkdirTemp("build", "benchinline-"); err != nil {
		return err
	}
	suffix := strconv.FormatInt(time.Now().UnixNano()%1e6, 36)
	b.router, b.probeNS, b.phone = "pcbi-r"+suffix, "pcbi-p"+suffix, "pcbi-h"+suffix
	steps := [][]string{
		{"netns", "add", b.router}, {"netns", "add", b.probeNS}, {"netns", "add", b.phone},
		{"-n", b.router, "link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", b.probeNS},
		{"-n", b.probeNS, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", b.phone},
		{"-n", b.router, "addr", "add", "10.77.0.1/24", "dev", "lan"},
		{"-n", b.phone, "addr", "add", "10.77.0.2/24", "dev", "eth0"},
	}
	for _, s := range steps {
		if _, err := run("ip", s...); err != nil {
			return err
		}
	}
	for _, end := range [][2]string{{b.router, "lan"}, {b.phone, "eth0"}, {b.probeNS, "eth0"}, {b.probeNS, "eth1"}} {
		if _, err := run("ip", "netns", "exec", end[0], "sysctl", "-q", "-w", "net.ipv6.conf."+end[1]+".disable_ipv6=1"); err != nil {
			return err
		}
		if _, err := run("ip", "-n", end[0], "link", "set", end[1], "up"); err != nil {
			return err
		}
	}
	b.server = exec.Command("ip", "netns", "exec", b.phone, "iperf3", "-s")
	if err := b.server.Start(); err != nil {
		return err
	}
	conf, err := b.floodConf()
	if err != nil {
		return err
	}
	fmt.Printf("| bridge | capture | iperf3 TCP Gbit/s | flood sent | flood forwarded | forwarded kpps | crossed | written | lost | CPU s | CPU ns/frame | peak RSS MiB |\n")
	fmt.Printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var configs [][2]string
	for range b.rounds {
		configs = append(configs, [][2]string{{"kernel (ip)", "none"}, {"kernel (ip)", "tcpdump"}, {"probe (inline)", "none"}, {"probe (inline)", "probe"}}...)
	}
	for _, cfg := range configs {
		r, err := b.once(cfg[0], cfg[1], conf)
		if err != nil {
			return fmt.Errorf("%s, %s: %w", cfg[0], cfg[1], err)
		}
		lost, perFrame := "—", "—"
		if r.capture != "none" {
			lost = strconv.FormatInt(int64(r.crossed)-int64(r.written), 10)
			perFrame = fmt.Sprintf("%.0f", r.cpuSecs*1e9/float64(max(r.crossed, 1)))
		}
		cpu, rss := "—", "—"
		if r.capture != "none" {
			cpu, rss = fmt.Sprintf("%.2f", r.cpuSecs), fmt.Sprintf("%.0f", r.rssMiB)
		}
		written := "—"
		if r.capture != "none" {
			written = strconv.FormatUint(r.written, 10)
		}
		fmt.Printf("| %s | %s | %.2f | %d | %d | %.0f | %d | %s | %s | %s | %s | %s |\n", r.bridge, r.capture, r.tcpGbps,
			r.floodSent, r.floodFwd, float64(r.floodFwd)/r.floodSecs/1e3, r.crossed, written, lost, cpu, perFrame, rss)
	}
	return nil
}

// floodConf writes trafgen's configuration: one 64-byte UDP frame from
// the router to the phone (60 bytes without the FCS).
func (b *bench) floodConf() (string, error) {
	mac := func(ns, dev string) ([]byte, error) {
		out, err := run("ip", "-n", ns, "-j", "link", "show", "dev", dev)
		if err != nil {
			return nil, err
		}
		var ls []struct {
			Address string `json:"address"`
		}
		if err := json.Unmarshal([]byte(out), &ls); err != nil || len(ls) != 1 {
			return nil, fmt.Errorf("ip link show %s: %v", dev, err)
		}
		return parseMAC(ls[0].Address)
	}
	src, err := mac(b.router, "lan")
	if err != nil {
		return "", err
	}
	dst, err := mac(b.phone, "eth0")
	if err != nil {
		return "", err
	}
	buf := gopacket.NewSerializeBuffer()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: []byte{10, 77, 0, 1}, DstIP: []byte{10, 77, 0, 2}}
	udp := &layers.UDP{SrcPort: 4000, DstPort: 9}
	udp.SetNetworkLayerForChecksum(ip)
	err = gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}, ip, udp, gopacket.Payload(make([]byte, 18)))
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	sb.WriteString("{ ")
	for i, c := range buf.Bytes() {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "0x%02x", c)
	}
	sb.WriteString(" }\n")
	path := filepath.Join(b.dir, "flood.cfg")
	return path, os.WriteFile(path, []byte(sb.String()), 0o644)
}

func parseMAC(s string) ([]byte, error) {
	var m []byte
	for _, p := range strings.Split(s, ":") {
		v, err := strconv.ParseUint(p, 16, 8)
		if err != nil {
			return nil, fmt.Errorf("MAC %q: %w", s, err)
		}
		m = append(m, byte(v))
	}
	return m, nil
}

func rx(ns, dev string) (uint64, error) {
	n, _, err := benchtool.Counters(ns, dev)
	return n, err
}

func txOf(ns, dev string) (uint64, error) {
	_, n, err := benchtool.Counters(ns, dev)
	return n, err
}

// received sums the frames the two outer ends received: every frame that
// crossed the bridge, either way.
func (b *bench) received() (uint64, error) {
	r, err := rx(b.router, "lan")
	if err != nil {
		return 0, err
	}
	p, err := rx(b.phone, "eth0")
	return r + p, err
}

func (b *bench) once(bridge, tool, conf string) (row, error) {
	r := row{bridge: bridge, capture: tool}
	if bridge == "probe (inline)" {
		// `probe network` sets the bridge up exactly as the service does.
		cfg, err := os.CreateTemp("", "benchinline-*.json")
		if err != nil {
			return r, err
		}
		defer os.Remove(cfg.Name())
		if _, err := cfg.WriteString(`{"network": {"mode": "inline", "ports": [{"interface": "eth0"}, {"interface": "eth1"}]}}`); err != nil {
			return r, err
		}
		if err := cfg.Close(); err != nil {
			return r, err
		}
		if _, err := run("ip", "netns", "exec", b.probeNS, b.probe, "network", "-config", cfg.Name()); err != nil {
			return r, err
		}
	} else {
		for _, s := range [][]string{
			{"-n", b.probeNS, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"},
			{"-n", b.probeNS, "link", "set", "eth0", "master", "br0"},
			{"-n", b.probeNS, "link", "set", "eth1", "master", "br0"},
			{"-n", b.probeNS, "link", "set", "br0", "up"},
		} {
			if _, err := run("ip", s...); err != nil {
				return r, err
			}
		}
	}
	defer run("ip", "-n", b.probeNS, "link", "del", "br0")
	// The bridge's own IPv6 (router solicitations, MLD) would leave by both
	// ports without crossing: the outer ends would count it.
	if _, err := run("ip", "netns", "exec", b.probeNS, "sysctl", "-q", "-w", "net.ipv6.conf.br0.disable_ipv6=1"); err != nil {
		return r, err
	}

	b.runs++ // each run its own output: a ring left by an earlier run would be reopened
	out := filepath.Join(b.dir, fmt.Sprintf("%d-%s-%s", b.runs, strings.Fields(bridge)[0], tool))
	var argv []string
	var ready string
	switch tool {
	case "tcpdump":
		if err := os.MkdirAll(out, 0o755); err != nil {
			return r, err
		}
		argv, ready = []string{"tcpdump", "-i", "eth0", "-w", filepath.Join(out, "eth0.pcap"), "-s", snap, "-B", "16384", "-Z", "root", "-n"}, "listening on"
	case "probe":
		argv, ready = []string{b.probe, "capture", "-iface", "eth0,eth1", "-inbound", "-snaplen", snap, "-ring", out, "-size", "1GiB"}, "capturing"
	}
	var tt *benchtool.Timed
	if tool != "none" {
		var err error
		if tt, err = benchtool.StartTimed(b.probeNS, 1, out+".time", ready, argv...); err != nil {
			return r, err
		}
		time.Sleep(300 * time.Millisecond)
	}
	before, err := b.received()
	if err != nil {
		return r, err
	}

	iperf, err := run("ip", "netns", "exec", b.router, "iperf3", "-c", "10.77.0.2", "-t", strconv.Itoa(b.seconds), "-J")
	if err != nil {
		return r, err
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(iperf), &res); err != nil {
		return r, fmt.Errorf("iperf3 output: %w", err)
	}
	r.tcpGbps = res.End.SumReceived.BitsPerSecond / 1e9

	sentBefore, err := txOf(b.router, "lan")
	if err != nil {
		return r, err
	}
	fwdBefore, err := rx(b.phone, "eth0")
	if err != nil {
		return r, err
	}
	start := time.Now()
	if _, err := run("ip", "netns", "exec", b.router, "taskset", "-c", "0", "trafgen", "-P", "1", "-C", "-n", strconv.Itoa(b.flood), "-o", "lan", "-i", conf); err != nil {
		if tt != nil {
			tt.Kill()
		}
		return r, err
	}
	r.floodSecs = time.Since(start).Seconds()
	time.Sleep(500 * time.Millisecond)
	sentAfter, err := txOf(b.router, "lan")
	if err != nil {
		return r, err
	}
	fwdAfter, err := rx(b.phone, "eth0")
	if err != nil {
		return r, err
	}
	r.floodSent, r.floodFwd = sentAfter-sentBefore, fwdAfter-fwdBefore
	after, err := b.received()
	if err != nil {
		return r, err
	}
	r.crossed = after - before
	if tt == nil {
		return r, nil
	}
	time.Sleep(time.Second)
	var rss int64
	if r.cpuSecs, rss, err = tt.Stop(); err != nil {
		return r, err
	}
	r.rssMiB = float64(rss) / 1024
	if tool == "probe" {
		r.written, err = benchtool.CountRing(out)
	} else {
		r.written, err = benchtool.CountPcaps(out)
	}
	return r, err
}

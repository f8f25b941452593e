// Command benchcapture is `make bench-capture`: it measures `probe capture`
// against tcpdump (and dumpcap at the generator's maximum) on a veth pair
// between two network namespaces it creates, with offloads off and the
// generator and the capture pinned to different CPUs.
//
// For each load (64-byte frames, 1400-byte frames, a mix averaging 372
// bytes) it runs tcpreplay -K at fixed rates and trafgen unthrottled, and
// reports for each tool: packets sent (the sender's veth counter), packets
// written (counted by reading the tool's output: the ring, or the PCAP
// files), lost, CPU seconds of the capture process and its peak RSS.
//
// With -stall it also takes the capture CPU away at regular moments, to
// measure how long a pause of the capture process the tools survive.
//
// Needs root and the packages tcpreplay, netsniff-ng, tcpdump, tshark
// (dumpcap), ethtool, iproute2, util-linux (taskset) and time.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"github.com/presscap/presscap/internal/bench/benchtool"
)

func main() {
	probe := flag.String("probe", "", "probe binary (required)")
	work := flag.String("dir", "", "work directory for outputs (default: a temporary directory)")
	secs := flag.Float64("seconds", 2, "length of each run in seconds")
	rates := flag.String("rates", "100000,250000,400000", "tcpreplay rates in packets per second")
	loads := flag.String("loads", "64,1400,mix,vlan", "loads to run: 64, 1400, mix (372-byte average), vlan (the mix, 802.1Q-tagged)")
	maxRuns := flag.Bool("max", true, "also run trafgen unthrottled")
	tools := flag.String("tools", "probe,tcpdump,dumpcap", "tools to run (dumpcap only at the maximum)")
	fixed := flag.Bool("fixed", true, "run tcpreplay at the -rates")
	stall := flag.Duration("stall", 0, "while the generator runs, take the capture CPU away for this long every 400 ms (a SCHED_FIFO busy loop on CPU 1), as another process or the hypervisor does on a busy machine")
	flag.Parse()
	if *probe == "" {
		fmt.Fprintln(os.Stderr, "benchcapture: -probe is required")
		os.Exit(2)
	}
	if *stall < 0 || *stall >= stallPeriod {
		fmt.Fprintf(os.Stderr, "benchcapture: -stall %v: must be at least 0 and below %v\n", *stall, stallPeriod)
		os.Exit(2)
	}
	b := &bench{probe: *probe, seconds: *secs, tools: map[string]bool{}, fixed: *fixed, stall: *stall}
	for _, t := range strings.Split(*tools, ",") {
		b.tools[strings.TrimSpace(t)] = true
	}
	if err := b.run(*work, *rates, *loads, *maxRuns); err != nil {
		fmt.Fprintln(os.Stderr, "benchcapture:", err)
		os.Exit(1)
	}
}

type bench struct {
	probe            string
	seconds          float64
	tools            map[string]bool
	fixed            bool
	stall            time.Duration
	dir              string
	genNS, capNS     string
	genDev, capDev   string
	results          []result
	loadPcap, loadTG map[string]string
}

type result struct {
	load, generator string
	rate            int // requested pps; 0 = unthrottled
	tool            string
	sent, written   uint64
	genPPS          float64
	cpu             float64 // user+sys seconds of the capture process
	rssKiB          int
	claim           string // the probe's own counts line
}

func (r result) lost() int64 { return int64(r.sent) - int64(r.written) }

func (b *bench) run(work, rates, loads string, maxRuns bool) error {
	for _, p := range []string{"ip", "ethtool", "taskset", "tcpreplay", "trafgen", "tcpdump", "dumpcap", "/usr/bin/time"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("%s not found: install iproute2 ethtool util-linux tcpreplay netsniff-ng tcpdump tshark time", p)
		}
	}
	if work == "" {
		d, err := os.MkdirTemp("/var/tmp", "benchcapture-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		work = d
	}
	b.dir = work
	if err := b.setup(); err != nil {
		b.teardown()
		return err
	}
	defer b.teardown()

	b.loadPcap, b.loadTG = map[string]string{}, map[string]string{}
	for _, load := range strings.Split(loads, ",") {
		frames, err := loadFrames(load)
		if err != nil {
			return err
		}
		if b.loadPcap[load], err = writePcap(filepath.Join(b.dir, "load-"+load+".pcap"), frames); err != nil {
			return err
		}
		if b.loadTG[load], err = writeTrafgen(filepath.Join(b.dir, "load-"+load+".cfg"), frames); err != nil {
			return err
		}
	}
	fmt.Printf("veth %s (ns %s, CPU 0 sends) -> %s (ns %s, CPU 1 captures), %.1f s a run", b.genDev, b.genNS, b.capDev, b.capNS, b.seconds)
	if b.stall > 0 {
		fmt.Printf(", CPU 1 taken away for %v every %v", b.stall, stallPeriod)
	}
	fmt.Println()
	for _, load := range strings.Split(loads, ",") {
		for _, rs := range strings.Split(rates, ",") {
			if !b.fixed {
				break
			}
			rate, err := strconv.Atoi(strings.TrimSpace(rs))
			if err != nil {
				return fmt.Errorf("-rates: %w", err)
			}
			for _, tool := range []string{"probe", "tcpdump"} {
				if !b.tools[tool] {
					continue
				}
				r, err := b.once(load, "tcpreplay", rate, tool)
				if err != nil {
					return err
				}
				b.report(r)
			}
		}
		if maxRuns {
			for _, tool := range []string{"probe", "tcpdump", "dumpcap"} {
				if !b.tools[tool] {
					continue
				}
				r, err := b.once(load, "trafgen", 0, tool)
				if err != nil {
					return err
				}
				b.report(r)
			}
		}
	}
	b.table(os.Stdout)
	return nil
}

func (b *bench) report(r result) {
	b.results = append(b.results, r)
	fmt.Fprintf(os.Stderr, "%-5s %-9s %7d %-8s sent %9d written %9d lost %7d (%.3f%%) cpu %.2fs rss %d MiB %s\n",
		r.load, r.generator, r.rate, r.tool, r.sent, r.written, r.lost(), pct(r.lost(), r.sent), r.cpu, r.rssKiB/1024, r.claim)
}

func pct(n int64, of uint64) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}

// table prints the results as Markdown, with the probe's CPU per packet
// relative to the other tools' in the same run.
func (b *bench) table(w io.Writer) {
	fmt.Fprintln(w, "| load | generator | target pps | achieved pps | tool | sent | written | lost | lost % | CPU s | CPU ns/pkt | CPU vs probe | peak RSS MiB |")
	fmt.Fprintln(w, "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	probeCPU := map[string]float64{}
	for _, r := range b.results {
		if r.tool == "probe" && r.written > 0 {
			probeCPU[fmt.Sprint(r.load, r.generator, r.rate)] = r.cpu / float64(r.written)
		}
	}
	for _, r := range b.results {
		target := "max"
		if r.rate > 0 {
			target = strconv.Itoa(r.rate)
		}
		per := math.NaN()
		if r.written > 0 {
			per = r.cpu / float64(r.written)
		}
		ratio := "—"
		if p := probeCPU[fmt.Sprint(r.load, r.generator, r.rate)]; p > 0 && r.tool != "probe" {
			ratio = fmt.Sprintf("%.2f×", per/p)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.0f | %s | %d | %d | %d | %.3f | %.2f | %.0f | %s | %d |\n",
			r.load, r.generator, target, r.genPPS, r.tool, r.sent, r.written, r.lost(), pct(r.lost(), r.sent), r.cpu, per*1e9, ratio, r.rssKiB/1024)
	}
}

func randomHex(n int) string {
	p := make([]byte, n)
	rand.Read(p)
	return hex.EncodeToString(p)[:n]
}

func sh(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (b *bench) setup() error {
	s := randomHex(6)
	b.genNS, b.capNS = "pcb-gen-"+s, "pcb-cap-"+s
	b.genDev, b.capDev = "pcbg"+s, "pcbc"+s
	steps := [][]string{
		{"ip", "netns", "add", b.genNS},
		{"ip", "netns", "add", b.capNS},
		{"ip", "link", "add", b.genDev, "netns", b.genNS, "type", "veth", "peer", "name", b.capDev, "netns", b.capNS},
	}
	for _, st := range steps {
		if _, err := sh(st[0], st[1:]...); err != nil {
			return err
		}
	}
	for _, x := range [][2]string{{b.genNS, b.genDev}, {b.capNS, b.capDev}} {
		ns, dev := x[0], x[1]
		sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf."+dev+".disable_ipv6=1")
		// Offloads off, one feature at a time: veth refuses some.
		for _, f := range []string{"rx", "tx", "sg", "tso", "gso", "gro", "lro", "rxvlan", "txvlan"} {
			sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, f, "off")
		}
		if _, err := sh("ip", "-n", ns, "link", "set", dev, "up"); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) teardown() {
	exec.Command("ip", "netns", "del", b.genNS).Run()
	exec.Command("ip", "netns", "del", b.capNS).Run()
}

// txPackets reads the sender's veth counter (the receiver's mirrors it).
func (b *bench) txPackets() (uint64, error) {
	_, tx, err := benchtool.Counters(b.genNS, b.genDev)
	return tx, err
}

// once runs one tool under one load and generator.
func (b *bench) once(load, gen string, rate int, tool string) (result, error) {
	r := result{load: load, generator: gen, rate: rate, tool: tool}
	out := filepath.Join(b.dir, "out")
	os.RemoveAll(out)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return r, err
	}
	timeFile := filepath.Join(b.dir, "time.txt")
	var argv []string
	var ready string
	switch tool {
	case "probe":
		argv, ready = []string{b.probe, "capture", "-iface", b.capDev, "-ring", filepath.Join(out, "ring"), "-size", "2000MiB"}, "capturing"
	case "tcpdump":
		argv, ready = []string{"tcpdump", "-i", b.capDev, "-w", filepath.Join(out, "ring"), "-C", "100", "-W", "20", "-B", "16384", "-Z", "root", "-n"}, "listening on"
	case "dumpcap":
		argv, ready = []string{"dumpcap", "-i", b.capDev, "-w", filepath.Join(out, "ring.pcap"), "-P", "-b", "filesize:100000", "-b", "files:20", "-B", "16"}, "Capturing on"
	}
	tt, err := benchtool.StartTimed(b.capNS, 1, timeFile, ready, argv...)
	if err != nil {
		return r, err
	}
	time.Sleep(500 * time.Millisecond)

	before, err := b.txPackets()
	if err != nil {
		return r, err
	}
	r.genPPS, err = b.generate(load, gen, rate)
	if err != nil {
		tt.Kill()
		return r, err
	}
	after, err := b.txPackets()
	if err != nil {
		return r, err
	}
	r.sent = after - before
	time.Sleep(time.Second)
	var rss int64
	if r.cpu, rss, err = tt.Stop(); err != nil {
		return r, err
	}
	r.rssKiB = int(rss)
	if tool == "probe" {
		// The probe's own account (seen, dropped by kind), for the log only:
		// the table counts what is in the ring.
		r.claim = strings.Join(strings.Fields(benchtool.LastLine(tt.Stdout())), " ")
	}
	switch tool {
	case "probe":
		r.written, err = benchtool.CountRing(filepath.Join(out, "ring"))
	default:
		r.written, err = benchtool.CountPcaps(out)
	}
	if err != nil {
		return r, fmt.Errorf("%s output: %w", tool, err)
	}
	os.RemoveAll(out)
	return r, nil
}

// generate sends the load for b.seconds and returns the achieved rate.
func (b *bench) generate(load, gen string, rate int) (float64, error) {
	var argv []string
	switch gen {
	case "tcpreplay":
		loops := int(math.Ceil(float64(min(int(float64(rate)*b.seconds), maxVolume/avgSize(load))) / float64(pcapPackets)))
		argv = []string{"tcpreplay", "-K", "--pps", strconv.Itoa(rate), "--loop", strconv.Itoa(loops), "-i", b.genDev, b.loadPcap[load]}
	case "trafgen":
		// About 700k pps here: run for roughly b.seconds, but never write
		// more than maxVolume (the tools' rings must not wrap).
		n := min(int(700000*b.seconds), maxVolume/avgSize(load))
		argv = []string{"trafgen", "-P", "1", "-C", "-n", strconv.Itoa(n), "-o", b.genDev, "-i", b.loadTG[load]}
	}
	full := append([]string{"netns", "exec", b.genNS, "taskset", "-c", "0"}, argv...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if b.stall > 0 {
		stalled := make(chan error, 1)
		sctx, stop := context.WithCancel(ctx)
		go func() { stalled <- stallCPU(sctx, 1, b.stall) }()
		defer func() {
			stop()
			if err := <-stalled; err != nil {
				fmt.Fprintln(os.Stderr, "benchcapture: -stall:", err)
			}
		}()
	}
	cmd := exec.CommandContext(ctx, "ip", full...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	// The generator's rate from its interface counter while it sends
	// (ip and taskset exec, so the pid becomes the generator's, and
	// /proc/PID/net/dev shows its namespace): first to last change.
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var first, last struct {
		n uint64
		t time.Time
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var werr error
loop:
	for {
		select {
		case werr = <-done:
			break loop
		case <-tick.C:
			n, ok := procTx(cmd.Process.Pid, b.genDev)
			if !ok {
				continue
			}
			now := time.Now()
			if first.t.IsZero() {
				first.n, first.t, last.n, last.t = n, now, n, now
			} else if n != last.n {
				last.n, last.t = n, now
			}
		}
	}
	if werr != nil {
		return 0, fmt.Errorf("%s: %w: %s", gen, werr, out.String())
	}
	if gen == "tcpreplay" {
		// tcpreplay reports its own achieved rate.
		for _, ln := range strings.Split(out.String(), "\n") {
			f := strings.Fields(strings.TrimSpace(ln))
			if len(f) > 0 && f[0] == "Rated:" {
				for i, w := range f {
					if strings.HasPrefix(w, "pps") && i > 0 {
						v, _ := strconv.ParseFloat(strings.TrimSuffix(f[i-1], ","), 64)
						return v, nil
					}
				}
			}
		}
	}
	if d := last.t.Sub(first.t).Seconds(); d > 0 {
		return float64(last.n-first.n) / d, nil
	}
	return 0, nil
}

// procTx reads a device's transmitted packets from /proc/PID/net/dev.
func procTx(pid int, dev string) (uint64, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return 0, false
	}
	for _, ln := range strings.Split(string(data), "\n") {
		name, rest, ok := strings.Cut(ln, ":")
		if !ok || strings.TrimSpace(name) != dev {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 10 {
			return 0, false
		}
		n, err := strconv.ParseUint(f[9], 10, 64)
		return n, err == nil
	}
	return 0, false
}

const pcapPackets = 10000

// maxVolume bounds the bytes sent in one run, below what the probe's ring
// (2000 MiB) and tcpdump's files (20 × 100 MB) hold, so that nothing
// written is overwritten before it is counted.
const maxVolume = 1200 << 20

func avgSize(load string) int {
	frames, _ := loadFrames(load)
	total := 0
	for _, f := range frames[:8] {
		total += len(f)
	}
	return total / 8
}

// loadFrames builds the frames of a load: UDP/IPv4 to a unicast MAC that
// is not the capture interface's.
func loadFrames(load string) ([][]byte, error) {
	var sizes []int
	switch load {
	case "64":
		sizes = []int{64}
	case "1400":
		sizes = []int{1400}
	case "mix", "vlan":
		// Averages 371.75 bytes; "vlan" is the same mix with an 802.1Q tag
		// (VLAN 7, priority 1) that the receiving kernel strips and the
		// capture tools put back.
		sizes = []int{64, 64, 64, 64, 128, 600, 590, 1400}
	default:
		return nil, fmt.Errorf("unknown load %q (64, 1400, mix, vlan)", load)
	}
	var frames [][]byte
	for i := 0; i < pcapPackets; i++ {
		size := sizes[i%len(sizes)]
		f := make([]byte, size)
		copy(f, []byte{0x02, 0xbe, 0x0c, 0, 0, 1, 0x02, 0xbe, 0x0c, 0, 0, 2, 0x08, 0x00})
		ip := f[14:34]
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(size-14))
		ip[8] = 64
		ip[9] = 17
		copy(ip[12:], []byte{198, 18, 0, 1})
		copy(ip[16:], []byte{198, 18, 0, 2})
		var sum uint32
		for j := 0; j < 20; j += 2 {
			sum += uint32(binary.BigEndian.Uint16(ip[j:]))
		}
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
		udp := f[34:42]
		binary.BigEndian.PutUint16(udp[0:], uint16(10000+i%5000))
		binary.BigEndian.PutUint16(udp[2:], 9)
		binary.BigEndian.PutUint16(udp[4:], uint16(size-34))
		binary.BigEndian.PutUint32(f[42:], uint32(i))
		if load == "vlan" {
			tagged := append([]byte{}, f[:12]...)
			tagged = append(tagged, 0x81, 0x00, 0x20, 0x07)
			f = append(tagged, f[12:len(f)-4]...)
		}
		frames = append(frames, f)
	}
	return frames, nil
}

func writePcap(path string, frames [][]byte) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		return "", err
	}
	t0 := time.Unix(1700000000, 0)
	for i, fr := range frames {
		ci := captureInfo(t0.Add(time.Duration(i)*time.Microsecond), len(fr))
		if err := w.WritePacket(ci, fr); err != nil {
			return "", err
		}
	}
	return path, f.Close()
}

// writeTrafgen writes the frames as a trafgen configuration; trafgen sends
// them round robin. The first len(pattern) frames suffice.
func writeTrafgen(path string, frames [][]byte) (string, error) {
	var sb strings.Builder
	for _, fr := range frames[:8] {
		sb.WriteString("{ ")
		for j, c := range fr {
			if j > 0 {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, "0x%02x", c)
		}
		sb.WriteString(" }\n")
	}
	return path, os.WriteFile(path, []byte(sb.String()), 0o644)
}

func captureInfo(t time.Time, n int) gopacket.CaptureInfo {
	return gopacket.CaptureInfo{Timestamp: t, CaptureLength: n, Length: n}
}

// stallPeriod is how often -stall takes the capture CPU away.
const stallPeriod = 400 * time.Millisecond

// stallCPU spins on cpu at real-time priority (SCHED_FIFO) for d every
// stallPeriod until ctx ends, so that nothing else runs there meanwhile:
// the capture's reader misses d of traffic, which the socket's ring must
// hold. The goroutine keeps its thread locked when it returns, so that the
// runtime discards the real-time thread instead of reusing it.
func stallCPU(ctx context.Context, cpu int, d time.Duration) error {
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin to CPU %d: %w", cpu, err)
	}
	if err := unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 50}, 0); err != nil {
		return fmt.Errorf("SCHED_FIFO: %w", err)
	}
	for ctx.Err() == nil {
		start := time.Now()
		for time.Since(start) < d {
		}
		select {
		case <-ctx.Done():
		case <-time.After(stallPeriod - d):
		}
	}
	return nil
}

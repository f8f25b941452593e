//go:build systemtest

package systemtest

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/bench/benchtool"
	"github.com/presscap/presscap/internal/testing/netnstest"
)

var (
	vmbenchRates   = flag.String("vmbench.rates", "40,1000,2000,5000,20000,50000", "BenchmarkVMCapture: frames a second sent into the capture NIC, one step each")
	vmbenchSeconds = flag.Duration("vmbench.step", 10*time.Second, "BenchmarkVMCapture: how long each rate is sent")
	vmbenchVMs     = flag.String("vmbench.vms", "host,x86,arm64", "BenchmarkVMCapture: what to measure, in turn (host: probe capture on a veth pair, the reference; x86: the VM edition on q35; arm64: presscap-vm on virt)")
)

// vmStep is one rate sent into a VM's capture NIC and what became of it.
type vmStep struct {
	rate     int     // asked for; 0 is the idle baseline
	achieved float64 // frames a second the host sent
	secs     float64 // between the status readings around the step
	sent     uint64
	// qemuDrops are datagrams the host's UDP stack dropped at QEMU's
	// socket backend (the emulator did not read them in time).
	qemuDrops uint64
	seen      uint64 // the probe's link: what the kernel's socket saw
	drops     uint64 // the probe's link: kernel ring, backlog and write drops
	written   uint64 // the probe's link: what the ring took
	ring      uint64 // the ring's own packet count
	cpu       float64
	qemuCPU   float64 // the QEMU process on the host (the whole VM)
}

func (s vmStep) lost() int64 { return int64(s.sent) - int64(s.written) }

// perFrame is the probe's CPU per written frame in µs.
func (s vmStep) perFrame() float64 { return 1e6 * s.cpu / float64(max(s.written, 1)) }

// perFrameAbove is perFrame less what the probe uses idle in as long.
func (s vmStep) perFrameAbove(idle vmStep) float64 {
	return 1e6 * (s.cpu - idle.cpu/idle.secs*s.secs) / float64(max(s.written, 1))
}

// BenchmarkVMCapture is make bench-vm: capture loss and CPU per packet on
// a virtio capture NIC in the VM edition (x86-64, q35, OVMF) and, in the
// same run, the arm64 VM, at the rates of -vmbench.rates, with the same
// probe on the host as the reference (measureHost). Each VM boots once, as
// the system tests boot it, with the probe capturing two virtio NICs
// (whole packets, the ring on its disk): eth1 fed through QEMU's UDP
// socket backend on loopback, as the system tests feed it, and eth2
// through a tap device, as a hypervisor attaches a NIC; each rate is sent
// into one, then the other, the end-to-end test's frames (133 bytes),
// paced every millisecond. Sent frames are counted on the host; seen,
// dropped and written ones are the probe's own status.json counters for
// that link, its CPU process.cpu_seconds, both read before and after each
// step once the counters stopped moving; the host's drop counter of the
// socket or tap tells loss before QEMU took a frame from loss in the
// guest. An idle step first gives the CPU used without traffic.
// Figures in docs/dev/benchmarks.md ("The VM edition on x86-64").
func BenchmarkVMCapture(b *testing.B) {
	var rates []int
	for _, f := range strings.Split(*vmbenchRates, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || r <= 0 {
			b.Fatalf("-vmbench.rates: %q is not a rate", f)
		}
		rates = append(rates, r)
	}
	results := map[string][]vmStep{}
	var names []string
	for range b.N {
		for _, name := range strings.Split(*vmbenchVMs, ",") {
			var vm map[string][]vmStep
			switch name {
			case "host":
				names = append(names, name)
				results[name] = measureHost(b, rates)
				continue
			case "x86":
				vm = measureVM(b, x86Q35(b), rates)
			case "arm64":
				vm = measureVM(b, arm64Virt, rates)
			default:
				b.Fatalf("-vmbench.vms: unknown %q (host, x86, arm64)", name)
			}
			for _, feed := range []string{"socket", "tap"} {
				names = append(names, name+" "+feed)
				results[name+" "+feed] = vm[feed]
			}
		}
	}
	printVMBench(names, results)
}

// printVMBench prints the steps as a Markdown table and the ratios of the
// probe's CPU per frame between what was measured, rate by rate.
func printVMBench(names []string, results map[string][]vmStep) {
	fmt.Printf("\nbench: VM capture, load average %s\n", loadAvg())
	fmt.Println("| where | target fps | achieved fps | sent | dropped on the host (QEMU's socket, the tap) | lost in the guest before the probe's socket | probe drops | written | lost | lost % | probe CPU s | probe µs/frame | of it, above idle | QEMU host CPU µs/frame above idle |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	dash := func(host bool, format string, v ...any) string {
		if host {
			return "—"
		}
		return fmt.Sprintf(format, v...)
	}
	for _, n := range names {
		steps, host := results[n], n == "host"
		if len(steps) == 0 {
			continue
		}
		idle := steps[0]
		fmt.Printf("| %s | idle | — | 0 | — | — | %s | %d | — | — | %.3f (%.1f %% of a CPU) | — | — | %s |\n",
			n, dash(host, "%d", idle.drops), idle.written, idle.cpu, 100*idle.cpu/idle.secs, dash(host, "— (QEMU idle: %.0f %% of a CPU)", 100*idle.qemuCPU/idle.secs))
		for _, s := range steps[1:] {
			fmt.Printf("| %s | %d | %.0f | %d | %s | %s | %s | %d | %d | %.3f | %.3f | %.1f | %.1f | %s |\n",
				n, s.rate, s.achieved, s.sent, dash(host, "%d", s.qemuDrops), dash(host, "%d", int64(s.sent)-int64(s.qemuDrops)-int64(s.seen)), dash(host, "%d", s.drops), s.written,
				s.lost(), 100*float64(s.lost())/float64(s.sent), s.cpu, s.perFrame(), s.perFrameAbove(idle),
				dash(host, "%.1f", 1e6*(s.qemuCPU-idle.qemuCPU/idle.secs*s.secs)/float64(max(s.written, 1))))
		}
	}
	for _, pair := range [][2]string{{"x86 socket", "host"}, {"x86 tap", "host"}, {"arm64 socket", "host"}, {"arm64 tap", "host"},
		{"x86 socket", "arm64 socket"}, {"x86 tap", "arm64 tap"}} {
		a, c := results[pair[0]], results[pair[1]]
		if a == nil || c == nil {
			continue
		}
		for i := 1; i < min(len(a), len(c)); i++ {
			fmt.Printf("bench: %d fps: probe CPU per frame, %s / %s: %.1f (above idle: %.1f)\n", a[i].rate, pair[0], pair[1],
				a[i].perFrame()/c[i].perFrame(), a[i].perFrameAbove(a[0])/c[i].perFrameAbove(c[0]))
		}
	}
}

// vmFeed is one way the host feeds a capture NIC of the VM: QEMU's UDP
// socket backend on loopback (as the system tests do) or a tap device
// (as Proxmox and libvirt attach a NIC).
type vmFeed struct {
	name string // socket, tap
	link string // the guest interface it feeds, as status.json names the link
	send func([]byte) error
	// drops counts frames the host dropped before QEMU took them.
	drops func() uint64
}

// socketFeed feeds the guest's eth1 through QEMU's UDP socket backend;
// the host's UDP drop counter of QEMU's socket counts what QEMU did not
// read in time.
func socketFeed(b *testing.B) (*vmFeed, []string) {
	nic := newCaptureNIC(b)
	return &vmFeed{name: "socket", link: "eth1",
		send: func(f []byte) error {
			_, err := nic.host.WriteToUDP(f, nic.qemuAddr)
			return err
		},
		drops: func() uint64 { return udpDrops(b, nic.qemuAddr.Port) },
	}, nic.args
}

// tapFeed feeds the guest's eth2 through a tap device on the host, the
// frames written to it with AF_PACKET; the tap's transmit drop counter
// counts what QEMU did not read in time.
func tapFeed(b *testing.B) (*vmFeed, []string) {
	netnstest.Require(b, "ip")
	dev := "pcv" + netnstest.RandomSuffix(7)
	netnstest.Run(b, "ip", "tuntap", "add", "dev", dev, "mode", "tap")
	b.Cleanup(func() { exec.Command("ip", "link", "del", dev).Run() })
	// No router solicitations or MLD reports of the host's into the guest.
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+dev+"/disable_ipv6", []byte("1"), 0o644); err != nil {
		b.Fatal(err)
	}
	netnstest.Run(b, "ip", "link", "set", dev, "up")
	sender := netnstest.NewSenderIn(b, "", dev)
	return &vmFeed{name: "tap", link: "eth2",
			send: func(f []byte) error { return sender.Send(f) },
			drops: func() uint64 {
				v, err := os.ReadFile("/sys/class/net/" + dev + "/statistics/tx_dropped")
				if err != nil {
					b.Fatal(err)
				}
				n, _ := strconv.ParseUint(strings.TrimSpace(string(v)), 10, 64)
				return n
			},
		}, []string{"-netdev", "tap,id=tap0,ifname=" + dev + ",script=no,downscript=no",
			"-device", "virtio-net-pci,netdev=tap0,romfile=,mac=52:54:00:12:34:97"}
}

// measureVM boots p's image with the probe capturing two virtio NICs,
// eth1 fed through QEMU's UDP socket backend and eth2 through a tap
// device, and measures the idle step and then each rate on each.
func measureVM(b *testing.B, p platform, rates []int) map[string][]vmStep {
	dir := b.TempDir()
	workdir, err := filepath.Abs(filepath.Join(repo, "build", fmt.Sprintf("_vmbench-%s-%d", p.instance, os.Getpid())))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(workdir) })
	tool := imageTool(b, dir)
	inst := copyInstance(b, dir, p.instance)
	editProbeConfig(b, inst, func(c map[string]any) {
		c["links"] = []map[string]string{{"interface": "eth1", "name": "socket"}, {"interface": "eth2", "name": "tap"}}
		// Whole packets into a ring that does not wrap during the run.
		c["ring"] = map[string]any{"size": "512MiB", "rules": []any{}}
		c["clock"] = map[string]any{"time_zone": "UTC"}
	})
	ts := time.Now().UTC().Truncate(time.Second)
	disk := filepath.Join(dir, p.instance+".img")
	buildImageFor(b, p, tool, inst, disk, workdir, ts)
	var ring string
	if p.instance == arm64Virt.instance {
		ring = ringDisk(b, dir) // a USB disk, as on the Pi
	} else {
		ring = filepath.Join(dir, "presscap-ring.img") // the VM's second disk, as make vm makes it
		if out, err := exec.Command(tool, "ringdisk", "-instance", inst, "-o", ring, "-size", "1G").CombinedOutput(); err != nil {
			b.Fatalf("image ringdisk: %v\n%s", err, out)
		}
	}
	pw := password(b, inst)
	sock, sockArgs := socketFeed(b)
	tap, tapArgs := tapFeed(b)
	statusPort := freePort(b)
	v := startVMOn(b, p, inst, disk, ring, dir, []string{fmt.Sprintf("hostfwd=tcp:127.0.0.1:%d-:8080", statusPort)}, append(sockArgs, tapArgs...))
	// A trickle until the probe records, as waitRecording needs a packet.
	stop := make(chan struct{})
	go func() {
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			sock.send(frame(seq, dportOf(seq)))
		}
	}()
	_, upDur := v.waitUp(b, pw, ts.Format(time.RFC3339), 5*time.Minute)
	_, recDur := waitRecording(b, v, statusPort, pw, 3*time.Minute)
	close(stop)
	fmt.Printf("bench: %s (%s): QEMU start to web UI %.1f s, to recording %.1f s; load average %s\n",
		p.instance, strings.Join(p.machine, " "), upDur.Seconds(), recDur.Seconds(), loadAvg())
	// Let the boot's own work (the ring's creation, DHCP, NTP) settle.
	time.Sleep(10 * time.Second)

	idle := measureStep(b, v, sock, statusPort, pw, 0)
	steps := map[string][]vmStep{sock.name: {idle}, tap.name: {idle}}
	for _, r := range rates {
		for _, f := range []*vmFeed{sock, tap} {
			s := measureStep(b, v, f, statusPort, pw, r)
			steps[f.name] = append(steps[f.name], s)
			fmt.Printf("bench: %s %s %d fps: sent %d (%.0f fps), dropped on the host %d, seen %d, probe drops %d, written %d (the ring took %d), probe CPU %.3f s, QEMU CPU %.2f s; load average %s\n",
				p.instance, f.name, r, s.sent, s.achieved, s.qemuDrops, s.seen, s.drops, s.written, s.ring, s.cpu, s.qemuCPU, loadAvg())
		}
	}
	if err := postPoweroff(v, pw); err != nil {
		b.Logf("poweroff: %v", err)
	}
	select {
	case <-v.done:
	case <-time.After(2 * time.Minute):
		b.Logf("%s did not power off; killed at cleanup", p.instance)
	}
	return steps
}

// measureStep sends rate frames a second into feed for -vmbench.step
// (nothing for rate 0) and reads the counters around it once they stopped
// moving.
func measureStep(b *testing.B, v *vm, feed *vmFeed, statusPort int, pw string, rate int) vmStep {
	s := vmStep{rate: rate}
	before, bq, bd := settledStatus(b, statusPort, pw), procCPU(b, v.cmd.Process.Pid), feed.drops()
	start := time.Now()
	if rate == 0 {
		time.Sleep(*vmbenchSeconds)
	} else {
		s.sent, s.achieved = sendPaced(b, feed.send, rate, *vmbenchSeconds)
	}
	after := settledStatus(b, statusPort, pw)
	s.secs = time.Since(start).Seconds()
	s.qemuCPU, s.qemuDrops = procCPU(b, v.cmd.Process.Pid)-bq, feed.drops()-bd
	lb, la := statusLink(b, before, feed.link), statusLink(b, after, feed.link)
	s.seen, s.drops, s.written = la.Seen-lb.Seen, la.Drops-lb.Drops, la.Written-lb.Written
	s.ring = after.Ring.Packets - before.Ring.Packets
	s.cpu = after.Process.CPUSeconds - before.Process.CPUSeconds
	return s
}

// statusLink is link name's counters in st.
func statusLink(b *testing.B, st probeStatus, name string) statusLinkCounts {
	for _, l := range st.Links {
		if l.Name == name {
			return l.statusLinkCounts
		}
	}
	b.Fatalf("status.json has no link %q: %+v", name, st.Links)
	return statusLinkCounts{}
}

// settledStatus reads status.json once the link's counters stayed the same
// for a second (the capture hands packets over in blocks and batches).
func settledStatus(b *testing.B, port int, pw string) probeStatus {
	b.Helper()
	var last probeStatus
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		s, err := getProbeStatus(port, pw)
		if err != nil {
			b.Fatalf("status.json: %v", err)
		}
		if s.Ring == nil || len(s.Links) == 0 || s.Process == nil {
			b.Fatalf("status.json lacks the ring, the links or process.cpu_seconds: %+v", s)
		}
		if last.Links != nil && slices.Equal(s.Links, last.Links) && s.Ring.Packets == last.Ring.Packets {
			return s
		}
		last = s
		time.Sleep(time.Second)
	}
	b.Fatalf("the probe's counters did not settle within a minute: %+v", last)
	return last
}

// sendPaced sends the end-to-end test's frames at rate frames a second
// for d, catching up every millisecond, and returns how many it sent and
// the rate it reached.
func sendPaced(b *testing.B, send func([]byte) error, rate int, d time.Duration) (uint64, float64) {
	start := time.Now()
	seq := 0
	for {
		el := time.Since(start)
		if el >= d {
			return uint64(seq), float64(seq) / el.Seconds()
		}
		for want := int(el.Seconds() * float64(rate)); seq < want; seq++ {
			if err := send(frame(seq, dportOf(seq))); err != nil {
				b.Fatalf("sending frame %d: %v", seq, err)
			}
		}
		time.Sleep(time.Millisecond)
	}
}

// procCPU is the CPU time in seconds the threads of process pid have
// used (schedstat's run time, in nanoseconds, summed over its threads).
func procCPU(b *testing.B, pid int) float64 {
	b.Helper()
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(stats) == 0 {
		b.Fatalf("process %d: no schedstat (%v)", pid, err)
	}
	var ns uint64
	for _, p := range stats {
		st, err := os.ReadFile(p)
		if err != nil {
			continue // a thread that just ended
		}
		f := strings.Fields(string(st))
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			b.Fatalf("%s: %q", p, st)
		}
		ns += n
	}
	return float64(ns) / 1e9
}

// udpDrops is the drop counter of the IPv4 UDP socket bound to port on
// 127.0.0.1 (/proc/net/udp's last column).
func udpDrops(b *testing.B, port int) uint64 {
	b.Helper()
	data, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		b.Fatal(err)
	}
	local := fmt.Sprintf("0100007F:%04X", port)
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) > 12 && f[1] == local {
			n, err := strconv.ParseUint(f[len(f)-1], 10, 64)
			if err != nil {
				b.Fatalf("/proc/net/udp: %q: %v", l, err)
			}
			return n
		}
	}
	b.Fatalf("/proc/net/udp has no socket on %s", local)
	return 0
}

// loadAvg is the host's load average over 1, 5 and 15 minutes.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

// measureHost is the reference: the same probe, built for the host, as
// `probe capture` on the host end of a veth pair, fed the same frames at
// the same rates from the other end, measured the same way (an idle step
// first, the CPU from just before sending until the ring took the last
// frame). Each step is a new process, so its start-up is not counted;
// written frames are counted by reading the ring afterwards.
func measureHost(b *testing.B, rates []int) []vmStep {
	dir := b.TempDir()
	work, err := os.MkdirTemp(filepath.Join(repo, "build"), "_vmbench-host-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(work) })
	probe := filepath.Join(dir, "probe")
	build := exec.Command("go", "build", "-o", probe, "./probe")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build ./probe: %v\n%s", err, out)
	}
	pair := netnstest.NewPair(b)
	sender := pair.NewSender(b)
	var steps []vmStep
	for _, rate := range append([]int{0}, rates...) {
		s := vmStep{rate: rate}
		ring := filepath.Join(work, fmt.Sprintf("ring-%d", rate))
		cmd := exec.Command(probe, "capture", "-iface", pair.Host, "-ring", ring, "-size", "512MiB")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		lines := netnstest.Follow(stderr)
		lines.Expect(b, fmt.Sprintf("probe: capturing %s into %s until interrupted", pair.Host, ring))
		go func() {
			for range lines {
			}
		}()
		time.Sleep(time.Second)
		start, c0 := time.Now(), procCPU(b, cmd.Process.Pid)
		if rate == 0 {
			time.Sleep(*vmbenchSeconds)
		} else {
			s.sent, s.achieved = sendPaced(b, func(f []byte) error { return sender.Send(f) }, rate, *vmbenchSeconds)
		}
		// The capture's block timeout and batch hand-over, as the VM's
		// settling.
		time.Sleep(2 * time.Second)
		s.cpu, s.secs = procCPU(b, cmd.Process.Pid)-c0, time.Since(start).Seconds()
		cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("probe capture: %v", err)
		}
		if s.written, err = benchtool.CountRing(ring); err != nil {
			b.Fatalf("reading the host's ring: %v", err)
		}
		if rate > 0 {
			fmt.Printf("bench: host %d fps: sent %d (%.0f fps), written %d, probe CPU %.4f s; load average %s\n",
				rate, s.sent, s.achieved, s.written, s.cpu, loadAvg())
		}
		os.RemoveAll(ring)
		steps = append(steps, s)
	}
	return steps
}

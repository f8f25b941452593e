// Command ringbench measures the packet ring against the tools it replaces:
// append throughput against dd with O_DIRECT, window extraction against dd of
// the same bytes and against dumpcap-style ring files cut with mergecap and
// editcap, peak memory of the writer and of an extraction, and reopen time.
// `make bench-ring` runs it; it prints a Markdown report with ratios.
//
// It re-executes itself for the phases whose memory or cold start matters
// (-child fill, -child reopen, -child pcaps).
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/presscap/presscap/ringfs"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "-child" {
		err = child(os.Args[2:])
	} else {
		err = bench()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ringbench:", err)
		os.Exit(1)
	}
}

// bench is the user's command: every measurement, its phases in children.
func bench() error {
	dir := flag.String("dir", "build", "parent directory for the temporary rings (on the filesystem to measure)")
	probe := flag.String("probe", "build/probe", "probe binary for extractions")
	size := flag.Int64("size", 4<<30, "size of the smaller ring (the larger one is twice this)")
	keep := flag.Bool("keep", false, "keep the temporary directory")
	encOnly := flag.Bool("encrypted-only", false, "measure only the encrypted ring against the clear one and dd")
	flag.Parse()
	return orchestrate(*dir, *probe, *size, *keep, *encOnly)
}

// child is one phase the orchestration runs in a process of its own
// (self): -child PHASE and the flags of that run.
func child(args []string) error {
	if len(args) == 0 {
		return errors.New("-child: want fill, reopen or pcaps")
	}
	fs := flag.NewFlagSet("ringbench -child "+args[0], flag.ContinueOnError)
	ring := fs.String("ring", "", "the ring (or, for pcaps, the files') directory")
	size := fs.Int64("size", 0, "size of the ring fill creates")
	block := fs.Int("block", 0, "ring block size (0: the default)")
	encrypt := fs.Bool("encrypt", false, "create the ring encrypted (key beside it, in RING.keys)")
	pkt := fs.Int("pkt", 1500, "packet size")
	count := fs.Int64("count", 0, "packets to write")
	gap := fs.Duration("gap", 0, "time between packets")
	fileSize := fs.Int64("filesize", 100e6, "size of each pcap file")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "fill":
		o := ringfs.Options{Size: *size, BlockSize: *block, Encrypt: *encrypt, KeyDir: keyDir(*ring)}
		return childFill(*ring, o, *pkt, *count, *gap)
	case "reopen":
		return childReopen(*ring)
	case "pcaps":
		return childPcaps(*ring, *pkt, *count, *gap, *fileSize)
	}
	return fmt.Errorf("unknown -child %q", args[0])
}

const start = int64(1_767_225_600_000_000_000) // 2026-01-01T00:00:00Z

// frame fills b with an Ethernet/IPv4/UDP frame tagged with i.
func frame(b []byte, i int64) {
	copy(b, []byte{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00, 0x45, 0})
	if len(b) >= 50 {
		binary.BigEndian.PutUint16(b[16:], uint16(len(b)-14))
		b[22], b[23] = 64, 17
		binary.LittleEndian.PutUint64(b[42:], uint64(i))
	}
}

type fillResult struct {
	Seconds float64 `json:"seconds"`
	Packets int64   `json:"packets"`
	Bytes   int64   `json:"bytes"`
	HWM     int64   `json:"vm_hwm_kib"`
}

// keyDir is where an encrypted ring of the benchmark keeps its key.
func keyDir(ring string) string { return ring + ".keys" }

// childFill creates the ring in dir with o and appends count frames of pkt
// bytes, gap apart in packet time.
func childFill(dir string, o ringfs.Options, pkt int, count int64, gap time.Duration) error {
	r, err := ringfs.Create(dir, o)
	if err != nil {
		return err
	}
	if _, err := r.AddLink(ringfs.Link{Name: "eth0", LinkType: 1, SnapLen: 65535}); err != nil {
		return err
	}
	b := make([]byte, pkt)
	t := time.Now()
	for i := range count {
		frame(b, i)
		if err := r.Append(ringfs.Record{Time: start + i*int64(gap), OrigLen: uint32(pkt), Data: b}); err != nil {
			return err
		}
	}
	if err := r.Close(); err != nil {
		return err
	}
	d := time.Since(t)
	return json.NewEncoder(os.Stdout).Encode(fillResult{d.Seconds(), count, count * int64(pkt), vmHWM()})
}

func vmHWM() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

func childReopen(dir string) error {
	// A read-only open reads the index on first use: time it with Info.
	t := time.Now()
	r, err := ringfs.Open(dir, ringfs.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	in, err := r.Info()
	if err != nil {
		return err
	}
	ro := time.Since(t)
	r.Close()
	dropCaches()
	t = time.Now()
	w, err := ringfs.Open(dir, ringfs.Options{FlushInterval: -1})
	if err != nil {
		return err
	}
	rw := time.Since(t)
	w.Close()
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"ro_seconds": ro.Seconds(), "rw_seconds": rw.Seconds(), "info": in})
}

type pcapFile struct {
	Path        string `json:"path"`
	First, Last int64
}

// childPcaps writes the same traffic as a fill into dumpcap-style ring files
// of fileSize bytes each.
func childPcaps(dir string, pkt int, count int64, gap time.Duration, fileSize int64) error {
	var files []pcapFile
	var f *os.File
	var w *pcapgo.Writer
	var bw *bufio.Writer
	var written int64
	closeFile := func() error {
		if f == nil {
			return nil
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		return f.Close()
	}
	b := make([]byte, pkt)
	for i := range count {
		ts := start + i*int64(gap)
		if f == nil || written >= fileSize {
			if err := closeFile(); err != nil {
				return err
			}
			name := filepath.Join(dir, fmt.Sprintf("ring_%05d_%s.pcap", len(files)+1, time.Unix(0, ts).UTC().Format("20060102150405")))
			var err error
			if f, err = os.Create(name); err != nil {
				return err
			}
			bw = bufio.NewWriterSize(f, 1<<20)
			w = pcapgo.NewWriterNanos(bw)
			if err = w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
				return err
			}
			files = append(files, pcapFile{Path: name, First: ts})
			written = 24
		}
		frame(b, i)
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, ts), CaptureLength: pkt, Length: pkt}
		if err := w.WritePacket(ci, b); err != nil {
			return err
		}
		files[len(files)-1].Last = ts
		written += 16 + int64(pkt)
	}
	if err := closeFile(); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(files)
}

type geometry struct {
	SegmentSize int64
	Segments    int
}

func ringGeometry(dir string) (geometry, error) {
	r, err := ringfs.Open(dir, ringfs.Options{ReadOnly: true})
	if err != nil {
		return geometry{}, err
	}
	defer r.Close()
	in, err := r.Info()
	return geometry{SegmentSize: in.SegmentSize, Segments: in.Segments}, err
}

// floorCopy copies n bytes with dd from the place a fraction frac into the
// ring's data (segment files in order), as one or two dd runs, and returns
// their total time: reading and writing the window's bytes once.
func floorCopy(dir string, g geometry, frac float64, n int64, out string) (run, error) {
	pos := int64(frac * float64(g.SegmentSize) * float64(g.Segments))
	var total run
	first := true
	for n > 0 {
		seg := int(pos / g.SegmentSize)
		skip := (pos % g.SegmentSize) >> 20
		count := min((n+(1<<20)-1)>>20, (g.SegmentSize>>20)-skip)
		args := []string{fmt.Sprintf("if=%s/seg-%06d", dir, seg), "of=" + out, "bs=1M",
			fmt.Sprint("skip=", skip), fmt.Sprint("count=", count)}
		if !first {
			args = append(args, "oflag=append", "conv=notrunc")
		}
		r, err := runCmd("dd", args...)
		if err != nil {
			return r, err
		}
		total.wall += r.wall
		n -= count << 20
		pos = int64(seg+1) * g.SegmentSize
		first = false
	}
	return total, nil
}

// dropCaches makes the next read come from the disk, as after a reboot.
// The programs being compared are loaded again right after, so that their
// start-up (a 16 MB probe binary against a small dd) is not what is measured.
func dropCaches() bool {
	syscall.Sync()
	ok := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o644) == nil
	for _, p := range warm {
		exec.Command(p[0], p[1:]...).Run()
	}
	return ok
}

var warm [][]string

type run struct {
	wall   time.Duration
	maxRSS int64 // KiB
	out    []byte
}

func runCmd(name string, args ...string) (run, error) {
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t := time.Now()
	err := cmd.Run()
	d := time.Since(t)
	if err != nil {
		return run{}, fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss
	}
	return run{d, rss, stdout.Bytes()}, nil
}

func self(args ...string) (run, error) {
	exe, err := os.Executable()
	if err != nil {
		return run{}, err
	}
	return runCmd(exe, args...)
}

// median runs f n times (dropping caches before each) and returns the run
// with the median wall time.
func median(n int, f func() (run, error)) (run, error) {
	var rs []run
	for range n {
		dropCaches()
		r, err := f()
		if err != nil {
			return r, err
		}
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b run) int { return int(a.wall - b.wall) })
	return rs[len(rs)/2], nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func orchestrate(parent, probe string, size int64, keep, encOnly bool) error {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "ringbench-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(tmp)
		// Gigabytes of rings must not outlive an interrupted run.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		go func() {
			<-sig
			os.RemoveAll(tmp)
			os.Exit(1)
		}()
	}
	probe, _ = filepath.Abs(probe)
	warm = [][]string{{probe, "help"}, {"dd", "--version"}, {"mergecap", "-v"}, {"editcap", "-v"}}
	for _, tool := range []string{"dd", "mergecap", "editcap", "capinfos"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (Debian packages coreutils, wireshark-common)", tool)
		}
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	say := func(format string, a ...any) {
		fmt.Fprintf(out, format, a...)
		out.Flush()
	}
	fsType, _ := exec.Command("stat", "-f", "-c", "%T", tmp).Output()
	say("Temporary directory %s (filesystem %s).\n\n", tmp, strings.TrimSpace(string(fsType)))
	if !encOnly {
		say("Ring sizes %d MiB and %d MiB.\n\n", size>>20, size>>19)
	}
	cached := dropCaches()
	if !cached {
		say("Warning: could not drop the page cache (not root): reads may come from memory.\n\n")
	}

	say("| measurement | result | reference | ratio |\n|---|---|---|---|\n")
	if err := encryptedRows(tmp, probe, say); err != nil || encOnly {
		return err
	}
	// Append throughput against the floor, dd with O_DIRECT: the machine is
	// shared, so each fill of a fresh 1 GiB ring is paired with a dd of the
	// same size right after it, and the median ratio of the pairs counts.
	const pkt = 1500
	var ratios []float64
	var ddRate float64
	for i := range 5 {
		d := filepath.Join(tmp, "ring-tp")
		r, err := self("-child", "fill", "-ring", d, "-size", fmt.Sprint(1<<30), "-pkt", fmt.Sprint(pkt), "-count", "600000", "-gap", "1ms")
		if err != nil {
			return err
		}
		os.RemoveAll(d)
		var fr fillResult
		if err := json.Unmarshal(r.out, &fr); err != nil {
			return err
		}
		dd, err := runCmd("dd", "if=/dev/zero", "of="+filepath.Join(tmp, "dd.bin"), "bs=1M", "count=1024", "oflag=direct")
		if err != nil {
			return err
		}
		os.Remove(filepath.Join(tmp, "dd.bin"))
		rate, ddr := float64(fr.Bytes)/fr.Seconds, float64(1<<30)/dd.wall.Seconds()
		say("| pair %d: append 600000 %d-byte packets to a fresh 1 GiB ring / dd if=/dev/zero bs=1M count=1024 oflag=direct | %.0f MiB/s of packet data | %.0f MiB/s | %.2f |\n",
			i+1, pkt, rate/(1<<20), ddr/(1<<20), rate/ddr)
		ratios = append(ratios, rate/ddr)
		ddRate = ddr
	}
	slices.Sort(ratios)
	say("| **append throughput, 1500-byte packets, median of the pairs** | | | **%.2f** of dd (goal ≥ 0.9) |\n", ratios[len(ratios)/2])

	// Traffic: 1500-byte packets spaced so that the smaller ring holds 40
	// minutes; both rings get the same rate, so a 2-minute window has the
	// same bytes in both.
	span := 40 * time.Minute
	perRing := int64(float64(size) * 0.9 / float64(pkt+20))
	gap := span / time.Duration(perRing)
	type ringRun struct {
		dir  string
		size int64
		fill fillResult
		rss  int64
	}
	var rings []ringRun
	for _, sz := range []int64{size, 2 * size} {
		d := filepath.Join(tmp, fmt.Sprintf("ring-%dM", sz>>20))
		n := perRing * sz / size
		r, err := self("-child", "fill", "-ring", d, "-size", fmt.Sprint(sz), "-pkt", fmt.Sprint(pkt), "-count", fmt.Sprint(n), "-gap", gap.String())
		if err != nil {
			return err
		}
		var fr fillResult
		if err := json.Unmarshal(r.out, &fr); err != nil {
			return err
		}
		rate := float64(fr.Bytes) / fr.Seconds
		say("| fill a %d MiB ring with %d-byte packets (%d packets, %.0f min of traffic) | %.0f MiB/s of packet data, %.2f M packets/s | last dd %.0f MiB/s | %.2f |\n",
			sz>>20, pkt, n, (time.Duration(n) * gap).Minutes(), rate/(1<<20), float64(n)/fr.Seconds/1e6, ddRate/(1<<20), rate/ddRate)
		rings = append(rings, ringRun{d, sz, fr, r.maxRSS})
	}

	// Small packets: the capture's worst case.
	{
		d := filepath.Join(tmp, "ring-small")
		const n = 30_000_000
		r, err := self("-child", "fill", "-ring", d, "-size", fmt.Sprint(1<<30), "-pkt", "64", "-count", fmt.Sprint(n), "-gap", "1µs")
		if err != nil {
			return err
		}
		var fr fillResult
		if err := json.Unmarshal(r.out, &fr); err != nil {
			return err
		}
		say("| append 64-byte packets into a 1024 MiB ring (%d packets, wraps) | **%.2f M packets/s** (%.0f MiB/s on disk) | goal ≥ 1.5 M packets/s | %.2f× the goal |\n",
			n, float64(n)/fr.Seconds/1e6, float64(n)*(64+20)/fr.Seconds/(1<<20), float64(n)/fr.Seconds/1.5e6)
		os.RemoveAll(d)
	}

	// Extraction of the same 2-minute window from both rings.
	from := start + int64(20*time.Minute)
	to := from + int64(2*time.Minute)
	rfc := func(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }
	var extractTimes []time.Duration
	var floorRatios []float64
	var windowBytes int64
	var extractRSS int64
	for _, rr := range rings {
		outFile := filepath.Join(tmp, "window.pcap")
		// Pairs again: a cold extraction, then the floor, a cold dd that
		// reads as many bytes from where the window lies in the ring (the
		// fill started at segment 0 and did not wrap) and writes them to a
		// file.
		geo, err := ringGeometry(rr.dir)
		if err != nil {
			return err
		}
		frac := float64(from-start) / float64(time.Duration(perRing*rr.size/size)*gap)
		var walls []time.Duration
		var ratios []float64
		packets := "?"
		for range 7 {
			dropCaches()
			r, err := runCmd(probe, "extract", "-ring", rr.dir, "-from", rfc(from), "-to", rfc(to), "-o", outFile)
			if err != nil {
				return err
			}
			st, _ := os.Stat(outFile)
			windowBytes = st.Size()
			if packets == "?" {
				ci, err := runCmd("capinfos", "-c", "-M", outFile)
				if err != nil {
					return err
				}
				for _, l := range strings.Split(string(ci.out), "\n") {
					if strings.HasPrefix(l, "Number of packets:") {
						packets = strings.TrimSpace(strings.TrimPrefix(l, "Number of packets:"))
					}
				}
			}
			os.Remove(outFile)
			dropCaches()
			fl, err := floorCopy(rr.dir, geo, frac, windowBytes, filepath.Join(tmp, "floor.bin"))
			if err != nil {
				return err
			}
			os.Remove(filepath.Join(tmp, "floor.bin"))
			walls = append(walls, r.wall)
			ratios = append(ratios, r.wall.Seconds()/fl.wall.Seconds())
			extractRSS = max(extractRSS, r.maxRSS)
			say("| pair: probe extract of a 2-minute window (%s packets, %.0f MiB) from the %d MiB ring / cold dd of the same bytes | %.3f s | %.3f s | %.2f |\n",
				packets, mib(windowBytes), rr.size>>20, r.wall.Seconds(), fl.wall.Seconds(), r.wall.Seconds()/fl.wall.Seconds())
		}
		slices.Sort(walls)
		slices.Sort(ratios)
		m := len(walls) / 2
		say("| **extraction from the %d MiB ring, median** | **%.3f s** | | **%.2f×** the floor (goal ≤ 1.5) |\n", rr.size>>20, walls[m].Seconds(), ratios[m])
		extractTimes = append(extractTimes, walls[m])
		floorRatios = append(floorRatios, ratios[m])
	}
	say("| extraction, ring twice as large / smaller ring | median time %.2f, median ratio to the floor %.2f | | (goal: does not grow) |\n",
		extractTimes[1].Seconds()/extractTimes[0].Seconds(), floorRatios[1]/floorRatios[0])

	// Baseline: dumpcap-style 100 MB files of the same traffic as the
	// smaller ring, picked by time, merged and cut.
	pdir := filepath.Join(tmp, "dumpcap")
	os.Mkdir(pdir, 0o755)
	r, err := self("-child", "pcaps", "-ring", pdir, "-pkt", fmt.Sprint(pkt), "-count", fmt.Sprint(perRing), "-gap", gap.String())
	if err != nil {
		return err
	}
	var files []pcapFile
	if err := json.Unmarshal(r.out, &files); err != nil {
		return err
	}
	var pick []string
	for _, f := range files {
		if f.Last >= from && f.First < to {
			pick = append(pick, f.Path)
		}
	}
	merged, cut := filepath.Join(tmp, "merged.pcap"), filepath.Join(tmp, "cut.pcap")
	base, err := median(3, func() (run, error) {
		t := time.Now()
		if _, err := runCmd("mergecap", append([]string{"-w", merged}, pick...)...); err != nil {
			return run{}, err
		}
		if _, err := runCmd("editcap", "-A", rfc(from), "-B", rfc(to), merged, cut); err != nil {
			return run{}, err
		}
		return run{wall: time.Since(t)}, nil
	})
	if err != nil {
		return err
	}
	say("| baseline: %d dumpcap-style files of 100 MB, mergecap of the %d overlapping + editcap -A/-B | %.3f s | probe extract %.3f s | **%.1f×** faster (goal ≥ 3) |\n",
		len(files), len(pick), base.wall.Seconds(), extractTimes[0].Seconds(), base.wall.Seconds()/extractTimes[0].Seconds())
	os.RemoveAll(pdir)
	os.Remove(merged)
	os.Remove(cut)

	for _, rr := range rings {
		say("| peak RSS of the writer filling the %d MiB ring | %.1f MiB (VmHWM %.1f MiB) | goal ≤ 64 MiB | |\n", rr.size>>20, float64(rr.rss)/1024, float64(rr.fill.HWM)/1024)
	}
	say("| peak RSS of probe extract (largest of the runs above) | %.1f MiB | goal ≤ 64 MiB | |\n", float64(extractRSS)/1024)

	for _, rr := range rings {
		dropCaches()
		r, err := self("-child", "reopen", "-ring", rr.dir)
		if err != nil {
			return err
		}
		var ro struct {
			RO   float64     `json:"ro_seconds"`
			RW   float64     `json:"rw_seconds"`
			Info ringfs.Info `json:"info"`
		}
		if err := json.Unmarshal(r.out, &ro); err != nil {
			return err
		}
		say("| reopen the %d MiB ring, cold cache (%d blocks, %d packets) | read-only open + Info %.1f ms, writer open %.1f ms | | |\n",
			rr.size>>20, ro.Info.Blocks, ro.Info.Packets, ro.RO*1000, ro.RW*1000)
	}
	return nil
}

// fill runs a child filling a fresh ring of 1 GiB with n 1500-byte packets
// 1 ms apart, and returns its rate in bytes of packet data a second.
func fill(ring string, n int64, encrypted bool) (float64, error) {
	r, err := self("-child", "fill", "-ring", ring, "-size", fmt.Sprint(1<<30), "-pkt", "1500",
		"-count", fmt.Sprint(n), "-gap", "1ms", fmt.Sprintf("-encrypt=%v", encrypted))
	if err != nil {
		return 0, err
	}
	var fr fillResult
	if err := json.Unmarshal(r.out, &fr); err != nil {
		return 0, err
	}
	return float64(fr.Bytes) / fr.Seconds, nil
}

// encryptedRows measures the encrypted ring (ring.encrypt) against the
// clear one and dd, in triples run back to back: appending 1500-byte
// packets to a fresh 1 GiB ring, and extracting a cold 2-minute window.
func encryptedRows(tmp, probe string, say func(string, ...any)) error {
	const n = 600_000 // 10 minutes at 1 ms, 858 MiB of packets
	clearRing, sealedRing := filepath.Join(tmp, "ring-clear"), filepath.Join(tmp, "ring-sealed")
	var vsClear, vsDD []float64
	for i := range 5 {
		os.RemoveAll(clearRing)
		os.RemoveAll(sealedRing)
		os.RemoveAll(keyDir(sealedRing))
		c, err := fill(clearRing, n, false)
		if err != nil {
			return err
		}
		e, err := fill(sealedRing, n, true)
		if err != nil {
			return err
		}
		dd, err := runCmd("dd", "if=/dev/zero", "of="+filepath.Join(tmp, "dd.bin"), "bs=1M", "count=1024", "oflag=direct")
		if err != nil {
			return err
		}
		os.Remove(filepath.Join(tmp, "dd.bin"))
		d := float64(1<<30) / dd.wall.Seconds()
		say("| triple %d: append %d 1500-byte packets to a fresh 1 GiB ring, encrypted / clear / dd if=/dev/zero bs=1M count=1024 oflag=direct | %.0f MiB/s | %.0f MiB/s clear, %.0f MiB/s dd | %.2f of clear, %.2f of dd |\n",
			i+1, n, e/(1<<20), c/(1<<20), d/(1<<20), e/c, e/d)
		vsClear, vsDD = append(vsClear, e/c), append(vsDD, e/d)
	}
	slices.Sort(vsClear)
	slices.Sort(vsDD)
	say("| **append to the encrypted ring, median of the triples** | | | **%.2f** of the clear ring, **%.2f** of dd |\n", vsClear[2], vsDD[2])

	// The last triple's rings hold the same 10 minutes: cut minutes 4 to 6.
	from, to := start+int64(4*time.Minute), start+int64(6*time.Minute)
	rfc := func(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }
	geo, err := ringGeometry(clearRing)
	if err != nil {
		return err
	}
	out := filepath.Join(tmp, "window.pcap")
	vsClear, vsDD = vsClear[:0], vsDD[:0]
	for i := range 5 {
		var walls [2]time.Duration
		var size int64
		for k, args := range [][]string{{"-ring", clearRing}, {"-ring", sealedRing, "-key-dir", keyDir(sealedRing)}} {
			dropCaches()
			r, err := runCmd(probe, append([]string{"extract", "-from", rfc(from), "-to", rfc(to), "-o", out}, args...)...)
			if err != nil {
				return err
			}
			walls[k] = r.wall
			st, err := os.Stat(out)
			if err != nil {
				return err
			}
			if k == 1 && st.Size() != size {
				return fmt.Errorf("the encrypted ring's window is %d bytes, the clear ring's %d", st.Size(), size)
			}
			size = st.Size()
			os.Remove(out)
		}
		dropCaches()
		fl, err := floorCopy(clearRing, geo, 0.4*float64(n*1520)/float64(1<<30), size, filepath.Join(tmp, "floor.bin"))
		if err != nil {
			return err
		}
		os.Remove(filepath.Join(tmp, "floor.bin"))
		say("| triple %d: probe extract of a cold 2-minute window (%.0f MiB) from the encrypted / clear 1 GiB ring / cold dd of the same bytes | %.3f s | %.3f s clear, %.3f s dd | %.2f of clear, %.2f of dd |\n",
			i+1, mib(size), walls[1].Seconds(), walls[0].Seconds(), fl.wall.Seconds(),
			walls[1].Seconds()/walls[0].Seconds(), walls[1].Seconds()/fl.wall.Seconds())
		vsClear = append(vsClear, walls[1].Seconds()/walls[0].Seconds())
		vsDD = append(vsDD, walls[1].Seconds()/fl.wall.Seconds())
	}
	slices.Sort(vsClear)
	slices.Sort(vsDD)
	say("| **extraction from the encrypted ring, median of the triples** | | | **%.2f×** the clear ring's time, **%.2f×** dd's |\n", vsClear[2], vsDD[2])
	os.RemoveAll(clearRing)
	os.RemoveAll(sealedRing)
	os.RemoveAll(keyDir(sealedRing))
	return nil
}

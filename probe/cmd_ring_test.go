package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/internal/pcapfile"
	"github.com/presscap/presscap/probe/internal/pcapfile/pcapfiletest"
	"github.com/presscap/presscap/ringfs"
)

// testPacket is what the tests feed in and expect back.
type testPacket struct {
	t    int64
	orig uint32
	data []byte
}

const t0 = int64(1_767_225_600_000_000_000) // 2026-01-01T00:00:00Z

// makeFrames returns n Ethernet/IPv4/UDP frames (so tshark dissects them
// cleanly), each tagged with its index, spaced gap apart from start.
func makeFrames(seed uint64, n int, start int64, gap time.Duration) []testPacket {
	rng := rand.New(rand.NewPCG(seed, 99))
	ps := make([]testPacket, n)
	for i := range ps {
		size := 60 + rng.IntN(1400)
		d := make([]byte, size)
		copy(d, []byte{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00})
		ip := d[14:]
		ip[0], ip[8], ip[9] = 0x45, 64, 17
		binary.BigEndian.PutUint16(ip[2:], uint16(size-14))
		copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
		binary.BigEndian.PutUint16(ip[20:], 5000)
		binary.BigEndian.PutUint16(ip[22:], 6000)
		binary.BigEndian.PutUint16(ip[24:], uint16(size-34))
		binary.LittleEndian.PutUint64(d[42:], uint64(i)+seed<<32)
		for j := 50; j < size; j++ {
			d[j] = byte(rng.Uint32())
		}
		orig := uint32(size)
		if i%5 == 0 {
			orig += 100 // sliced
		}
		ps[i] = testPacket{t: start + int64(i)*int64(gap), orig: orig, data: d}
	}
	return ps
}

func writePcap(t *testing.T, path string, ps []testPacket) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcapfile.NewPCAP(f, 1, 65535)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if err := w.WritePacket(p.t, p.orig, p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	checkCapture(t, path, len(ps))
}

// checkStdout validates a capture that went to standard output.
func checkStdout(t *testing.T, out string, want int) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "stdout.pcap")
	if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	checkCapture(t, p, want)
}

func readCapture(t *testing.T, r io.Reader) ([]testPacket, []pcapfile.Interface) {
	t.Helper()
	rd, err := pcapfile.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	var ps []testPacket
	for {
		p, err := rd.Next()
		if err == io.EOF {
			return ps, rd.Interfaces()
		}
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, testPacket{p.Time, p.OrigLen, bytes.Clone(p.Data)})
	}
}

func samePackets(t *testing.T, what string, got, want []testPacket) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d packets, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i].t != want[i].t || got[i].orig != want[i].orig || !bytes.Equal(got[i].data, want[i].data) {
			t.Fatalf("%s: packet %d differs: got t=%d orig=%d len=%d, want t=%d orig=%d len=%d",
				what, i, got[i].t, got[i].orig, len(got[i].data), want[i].t, want[i].orig, len(want[i].data))
		}
	}
}

func window(ps []testPacket, from, to int64) []testPacket {
	var w []testPacket
	for _, p := range ps {
		if p.t >= from && p.t < to {
			w = append(w, p)
		}
	}
	return w
}

// checkCapture validates a file we wrote with capinfos and tshark, checks
// that both count want packets, and holds the report's figures on it
// against tshark's. Under -short (make check) only capinfos: tshark takes
// a second or more a file.
func checkCapture(t *testing.T, path string, want int) {
	t.Helper()
	out, err := exec.Command(testtool.Path(t, "capinfos", "wireshark-common"), "-c", "-M", path).CombinedOutput()
	if err != nil {
		t.Fatalf("capinfos %s: %v\n%s", path, err, out)
	}
	m := regexp.MustCompile(`Number of packets:\s+(\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("capinfos %s: no packet count in\n%s", path, out)
	}
	if n, _ := strconv.Atoi(string(m[1])); n != want {
		t.Errorf("capinfos %s: %d packets, want %d", path, n, want)
	}
	if testing.Short() {
		return // tshark's dissection and report comparison: make test's
	}
	cmd := exec.Command(testtool.Path(t, "tshark", "tshark"), "-n", "-r", path, "-T", "fields", "-e", "frame.len", "-e", "udp.dstport")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	// tshark warns when run as root (as in CI); any other message is a problem.
	complaint := regexp.MustCompile(`(?m)^Running as user .*dangerous\.\n?`).ReplaceAllString(stderr.String(), "")
	if err != nil || complaint != "" {
		t.Fatalf("tshark -r %s: %v\n%s", path, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if want == 0 {
		lines = lines[:0]
	}
	if len(lines) != want {
		t.Fatalf("tshark -r %s: %d packets, want %d", path, len(lines), want)
	}
	for i, l := range lines {
		if !strings.HasSuffix(l, "\t6000") {
			t.Fatalf("tshark -r %s: packet %d dissected as %q, want a UDP packet to port 6000", path, i+1, l)
		}
	}
	pcapfiletest.CheckReport(t, path)
}

func probeRun(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = dispatch(context.Background(), env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}, args)
	return out.String(), errb.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, err := probeRun(t, args...)
	if err != nil {
		t.Fatalf("probe %s: %v\n%s", strings.Join(args, " "), err, errs)
	}
	return out
}

func rfc(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

func TestRingImportInfoExtract(t *testing.T) {
	dir := t.TempDir()
	ring := filepath.Join(dir, "ring")
	// Two files: a nanosecond pcap of ours, and a pcapng made from another of
	// ours by editcap (a foreign writer for the pcapng reader).
	a := makeFrames(1, 3000, t0, 100*time.Millisecond)
	b := makeFrames(2, 2000, t0+300e9, 50*time.Millisecond)
	writePcap(t, filepath.Join(dir, "a.pcap"), a)
	writePcap(t, filepath.Join(dir, "b.pcap"), b)
	if out, err := exec.Command(testtool.Path(t, "editcap", "wireshark-common"), "-F", "pcapng",
		filepath.Join(dir, "b.pcap"), filepath.Join(dir, "b.pcapng")).CombinedOutput(); err != nil {
		t.Fatalf("editcap: %v\n%s", err, out)
	}
	out := mustRun(t, "ring", "import", "-ring", ring, "-size", "64M", filepath.Join(dir, "a.pcap"), filepath.Join(dir, "b.pcapng"))
	if !strings.Contains(out, "imported 5000 packets from 2 files") {
		t.Errorf("import said %q", out)
	}
	all := append(append([]testPacket(nil), a...), b...)

	var in ringfs.Info
	if err := json.Unmarshal([]byte(mustRun(t, "ring", "info", "-ring", ring, "-json")), &in); err != nil {
		t.Fatal(err)
	}
	if in.Packets != 5000 || in.Oldest != a[0].t || in.Newest != b[len(b)-1].t || in.Size != 64<<20 ||
		len(in.Links) != 1 || in.Links[0].LinkType != 1 {
		t.Errorf("ring info: %+v", in)
	}
	text := mustRun(t, "ring", "info", "-ring", ring)
	if !strings.Contains(text, "packets   5000") || !strings.Contains(text, rfc(a[0].t)) ||
		!strings.Contains(text, fmt.Sprintf("span      %v\n", time.Duration(b[len(b)-1].t-a[0].t))) {
		t.Errorf("ring info text:\n%s", text)
	}

	// -from/-to across the boundary of the two files, classic pcap.
	from, to := t0+250e9+123, t0+330e9
	p1 := filepath.Join(dir, "w1.pcap")
	_, errs, err := probeRun(t, "extract", "-ring", ring, "-from", rfc(from), "-to", rfc(to), "-o", p1)
	if err != nil {
		t.Fatal(err, errs)
	}
	want := window(all, from, to)
	checkCapture(t, p1, len(want))
	f, _ := os.Open(p1)
	got, _ := readCapture(t, f)
	f.Close()
	samePackets(t, "pcap window", got, want)

	// -at/-before/-after, pcapng, one link by name.
	p2 := filepath.Join(dir, "w2.pcapng")
	mustRun(t, "extract", "-ring", ring, "-at", rfc(t0+100e9), "-before", "10s", "-after", "5.5s", "-link", "import", "-format", "pcapng", "-o", p2)
	want = window(all, t0+90e9, t0+105_500_000_000)
	checkCapture(t, p2, len(want))
	f, _ = os.Open(p2)
	got, ifaces := readCapture(t, f)
	f.Close()
	samePackets(t, "pcapng window", got, want)
	if len(ifaces) != 1 || ifaces[0].Name != "import" {
		t.Errorf("pcapng interfaces %+v", ifaces)
	}

	// -filter goes through the filter compiler: every test frame is UDP to
	// port 6000, none is TCP.
	for _, c := range []struct {
		expr string
		n    int
	}{{"udp dst port 6000", len(want)}, {"tcp", 0}} {
		p := filepath.Join(dir, "filtered.pcap")
		mustRun(t, "extract", "-ring", ring, "-at", rfc(t0+100e9), "-before", "10s", "-after", "5.5s", "-filter", c.expr, "-o", p)
		checkCapture(t, p, c.n)
	}

	// To standard output; an empty window is a valid empty file.
	out = mustRun(t, "extract", "-ring", ring, "-from", rfc(t0+1e9), "-to", rfc(t0+2e9), "-o", "-")
	got, _ = readCapture(t, strings.NewReader(out))
	samePackets(t, "stdout window", got, window(all, t0+1e9, t0+2e9))
	checkStdout(t, out, len(got))
	p3 := filepath.Join(dir, "empty.pcap")
	_, errs, err = probeRun(t, "extract", "-ring", ring, "-from", rfc(t0-10e9), "-to", rfc(t0-5e9), "-o", p3)
	if err != nil {
		t.Fatal(err, errs)
	}
	checkCapture(t, p3, 0)
	// The window is older than anything the ring ever held: a loss, said so.
	if w := "truncated (ring_younger_than_window): 5s of the window is missing; the ring reached back to " + rfc(a[0].t); !strings.Contains(errs, w) {
		t.Errorf("extract before the ring's start: stderr %q, want %q", errs, w)
	}
}

func TestRingBadInputs(t *testing.T) {
	dir := t.TempDir()
	ring := filepath.Join(dir, "ring")
	ps := makeFrames(3, 100, t0, time.Second)
	good := filepath.Join(dir, "good.pcap")
	writePcap(t, good, ps)
	mustRun(t, "ring", "import", "-ring", ring, "-size", "64MiB", good)
	raw, _ := os.ReadFile(good)

	bad := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	// Record 3 starts after the header and two records.
	rec3 := 24 + 16 + len(ps[0].data) + 16 + len(ps[1].data)
	huge := bytes.Clone(raw)
	binary.LittleEndian.PutUint32(huge[rec3+8:], 1<<30)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"ring", "import", "-ring", ring, bad("trunc.pcap", raw[:len(raw)-7])}, "packet 100 at byte"},
		{[]string{"ring", "import", "-ring", ring, bad("trunc.pcap", raw[:len(raw)-7])}, "truncated"},
		{[]string{"ring", "import", "-ring", ring, bad("hdr.pcap", raw[:10])}, "truncated"},
		{[]string{"ring", "import", "-ring", ring, bad("text.pcap", []byte("hello, this is not a capture file"))}, "not a pcap or pcapng file"},
		{[]string{"ring", "import", "-ring", ring, bad("huge.pcap", huge)}, fmt.Sprintf("packet 3 at byte %d: captured length 1073741824", rec3)},
		{[]string{"ring", "import", "-ring", ring, good, filepath.Join(dir, "missing.pcap")}, "missing.pcap"},
		{[]string{"ring", "import", "-ring", filepath.Join(dir, "new"), good}, "give -size"},
		{[]string{"ring", "import", "-ring", filepath.Join(dir, "small"), "-size", "1M", good}, "too small"},
		{[]string{"ring", "import", "-ring", filepath.Join(dir, "x"), "-size", "lots", good}, `-size "lots"`},
		{[]string{"ring", "info", "-ring", dir}, "not a presscap ring"},
		{[]string{"extract", "-ring", dir, "-from", rfc(t0), "-to", rfc(t0 + 1), "-o", "-"}, "not a presscap ring"},
		{[]string{"extract", "-ring", ring, "-from", rfc(t0 + 10), "-to", rfc(t0), "-o", "-"}, "is after -to"},
		{[]string{"extract", "-ring", ring, "-from", "yesterday", "-to", rfc(t0), "-o", "-"}, `-from "yesterday"`},
		{[]string{"extract", "-ring", ring, "-from", rfc(t0), "-o", "-"}, "-from and -to go together"},
		{[]string{"extract", "-ring", ring, "-o", "-"}, "no window"},
		{[]string{"extract", "-ring", ring, "-at", rfc(t0), "-before", "1s", "-link", "eth9", "-o", "-"}, `-link "eth9"`},
		{[]string{"extract", "-ring", ring, "-at", rfc(t0), "-format", "snoop", "-o", "-"}, `-format "snoop"`},
		{[]string{"ring", "frob"}, `unknown subcommand "frob"`},
		{[]string{"extract", "-ring", ring, "-at", rfc(t0), "-filter", "port port", "-o", "-"}, "-filter"},
	}
	for _, c := range cases {
		_, _, err := probeRun(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("probe %s: error %v, want one containing %q", strings.Join(c.args, " "), err, c.want)
		}
	}
	// A second import with another -size keeps the ring and says so.
	_, errs, err := probeRun(t, "ring", "import", "-ring", ring, "-size", "128M", good)
	if err != nil || !strings.Contains(errs, "-size 128M ignored") {
		t.Errorf("import with another size: %v, stderr %q", err, errs)
	}
	ps = append(ps, ps...)
	// Nothing of the bad imports got in, nothing good got lost.
	out := mustRun(t, "extract", "-ring", ring, "-from", rfc(0), "-to", rfc(t0+1000e9), "-o", "-")
	got, _ := readCapture(t, strings.NewReader(out))
	samePackets(t, "ring after bad inputs", got, ps)
	checkStdout(t, out, len(ps))
	// A failed (here: cancelled) extraction leaves no file behind.
	outDir := filepath.Join(dir, "out")
	os.Mkdir(outDir, 0o755)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var sink bytes.Buffer
	err = dispatch(ctx, env{stdout: &sink, stderr: &sink}, []string{"extract", "-ring", ring,
		"-from", rfc(t0), "-to", rfc(t0 + 50e9), "-o", filepath.Join(outDir, "w.pcap")})
	if err == nil {
		t.Fatal("cancelled extraction succeeded")
	}
	if left, _ := os.ReadDir(outDir); len(left) != 0 {
		t.Errorf("failed extraction left %v", left)
	}
}

// TestRingCrashChild is the writer process TestRingCrashRecovery kills; it
// only runs when that test starts it.
func TestRingCrashChild(t *testing.T) {
	args := os.Getenv("PRESSCAP_CRASH_CHILD")
	if args == "" {
		t.Skip("helper process of TestRingCrashRecovery")
	}
	e := env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	if err := dispatch(context.Background(), e, strings.Split(args, "\x1f")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(0)
}

// TestRingCrashRecovery kills `probe ring import` with SIGKILL at 20 random
// points. After each kill the ring must reopen, return a byte-identical
// prefix of the input in order, and hold at least everything the importer
// had reported durable before it died. Every other pair of kills is of an
// encrypted ring (issue 17), whose key is in a directory beside it.
func TestRingCrashRecovery(t *testing.T) {
	// Under -short (make check) four kills, two of each kind, of a
	// shorter import.
	frames, iters := 60000, 20
	if testing.Short() {
		frames, iters = 12000, 4
	}
	dir := t.TempDir()
	ps := makeFrames(4, frames, t0, time.Millisecond)
	in := filepath.Join(dir, "in.pcap")
	writePcap(t, in, ps)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	const syncEvery = 1000
	for iter := range iters {
		ring := filepath.Join(dir, fmt.Sprintf("ring%d", iter))
		encrypted := iter/2%2 == 1
		keys := filepath.Join(dir, fmt.Sprintf("keys%d", iter))
		r, err := ringfs.Create(ring, ringfs.Options{Size: 64 << 20, Encrypt: encrypted, KeyDir: keys})
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		cmd := exec.Command(os.Args[0], "-test.run=^TestRingCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "PRESSCAP_CRASH_CHILD="+strings.Join(
			[]string{"ring", "import", "-ring", ring, "-key-dir", keys, "-flush", "20ms", "-sync-every", strconv.Itoa(syncEvery), in}, "\x1f"))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill either after a random number of durable reports, or after a
		// random delay (which may land anywhere, including mid-flush).
		durable := 0
		lines := make(chan int, 100)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if n, ok := strings.CutPrefix(sc.Text(), "durable "); ok {
					v, _ := strconv.Atoi(n)
					lines <- v
				}
			}
			close(lines)
		}()
		killAfter := 1 + rng.IntN(len(ps)/syncEvery-2)
		delay := time.Duration(rng.IntN(150)) * time.Millisecond
		timer := time.NewTimer(delay)
		byTime := iter%2 == 0
	wait:
		for {
			select {
			case n, ok := <-lines:
				if !ok {
					break wait
				}
				durable = n
				if !byTime && n >= killAfter*syncEvery {
					break wait
				}
			case <-timer.C:
				if byTime {
					break wait
				}
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		for n := range lines { // what was printed before the kill counts too
			durable = max(durable, n)
		}
		werr := cmd.Wait()
		if werr == nil {
			t.Logf("iteration %d: the import finished before the kill", iter)
		} else if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("iteration %d: importer failed on its own: %v\n%s", iter, werr, stderr.String())
		}

		r, err = ringfs.Open(ring, ringfs.Options{FlushInterval: -1, KeyDir: keys})
		if err != nil {
			t.Fatalf("iteration %d: reopen after kill: %v", iter, err)
		}
		if in, _ := r.Info(); in.Encrypted != encrypted {
			t.Fatalf("iteration %d: ring encrypted %v, want %v", iter, in.Encrypted, encrypted)
		}
		var got []testPacket
		st, err := r.Read(context.Background(), ps[0].t, 1<<62, func(rec ringfs.Record) error {
			got = append(got, testPacket{rec.Time, rec.OrigLen, bytes.Clone(rec.Data)})
			return nil
		})
		if err != nil {
			t.Fatalf("iteration %d: read: %v", iter, err)
		}
		if len(got) < durable || len(got) > len(ps) {
			t.Fatalf("iteration %d: %d packets after the kill, but %d were durable (input %d)", iter, len(got), durable, len(ps))
		}
		samePackets(t, fmt.Sprintf("iteration %d prefix", iter), got, ps[:len(got)])
		// An empty ring does not hold the window's start: that alone may
		// be reported as truncated.
		if st.Corrupt != 0 || (st.Truncated && len(got) > 0) {
			t.Errorf("iteration %d: stats %+v", iter, st)
		}
		how := fmt.Sprintf("%d durable reports", killAfter)
		if byTime {
			how = delay.String()
		}
		t.Logf("iteration %d (encrypted %v): killed after %s: %d packets durable, %d recovered", iter, encrypted, how, durable, len(got))
		// The reopened ring takes new packets after the recovered ones.
		extra := makeFrames(5, 10, t0+1000e9, time.Millisecond)
		for _, p := range extra {
			if err := r.Append(ringfs.Record{Time: p.t, OrigLen: p.orig, Data: p.data}); err != nil {
				t.Fatal(err)
			}
		}
		var after []testPacket
		r.Read(context.Background(), 0, 1<<62, func(rec ringfs.Record) error {
			after = append(after, testPacket{rec.Time, rec.OrigLen, bytes.Clone(rec.Data)})
			return nil
		})
		samePackets(t, fmt.Sprintf("iteration %d after reopen", iter), after, append(got, extra...))
		r.Close()
		os.RemoveAll(ring)
	}
}

// TestExtractWhileImporting runs probe extract against a ring another
// process is filling: every file must be valid, hold input packets only, in
// order, and at least what the importer had made durable when it started.
func TestExtractWhileImporting(t *testing.T) {
	frames := 20000
	if testing.Short() {
		frames = 4000 // make check
	}
	dir := t.TempDir()
	ps := makeFrames(6, frames, t0, time.Millisecond)
	in := filepath.Join(dir, "in.pcap")
	writePcap(t, in, ps)
	ring := filepath.Join(dir, "ring")
	// Large enough for the three copies: no wrapping, so every extraction
	// must start at the first packet.
	r, err := ringfs.Create(ring, ringfs.Options{Size: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRingCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PRESSCAP_CRASH_CHILD="+strings.Join(
		[]string{"ring", "import", "-ring", ring, "-flush", "10ms", "-sync-every", "50", in, in, in}, "\x1f"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	durable := make(chan int, 1000)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if n, ok := strings.CutPrefix(sc.Text(), "durable "); ok {
				v, _ := strconv.Atoi(n)
				durable <- v
			}
		}
		close(durable)
	}()
	// The input three times over: packet k of the stream is ps[k % len(ps)].
	extracts, lastDurable, done := 0, 0, false
	for !done {
		select {
		case n, ok := <-durable:
			if !ok {
				done = true
				break
			}
			lastDurable = n
			// fdatasync every 50 packets keeps the importer busy for a
			// while; extract in the middle of each copy of the input.
			if n%frames != frames/2 {
				continue
			}
			out := filepath.Join(dir, fmt.Sprintf("w%d.pcap", extracts))
			if _, errs, err := probeRun(t, "extract", "-ring", ring, "-from", rfc(0), "-to", rfc(t0+1000e9), "-o", out); err != nil {
				t.Fatalf("extract while importing: %v\n%s", err, errs)
			}
			f, _ := os.Open(out)
			got, _ := readCapture(t, f)
			f.Close()
			if len(got) < lastDurable {
				t.Fatalf("extract %d: %d packets, but %d were durable before it started", extracts, len(got), lastDurable)
			}
			want := make([]testPacket, len(got))
			for k := range want {
				want[k] = ps[k%len(ps)]
			}
			samePackets(t, fmt.Sprintf("extract %d while importing", extracts), got, want)
			checkCapture(t, out, len(got))
			t.Logf("extract %d: %d packets, %d durable before it", extracts, len(got), lastDurable)
			extracts++
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("importer: %v", err)
	}
	t.Logf("%d extractions while importing %d packets", extracts, lastDurable)
	if extracts != 3 {
		t.Errorf("only %d extractions ran during the import", extracts)
	}
}

// TestExtractFilterSlicedPackets: in a ring whose packets were cut short
// (caplen < len), `-filter` judges len/less/greater by the original length,
// as tcpdump -r does on the same file: the extraction holds exactly the
// packets tcpdump -r selects from the imported pcap.
func TestExtractFilterSlicedPackets(t *testing.T) {
	tcpdump := testtool.Path(t, "tcpdump", "tcpdump")
	dir := t.TempDir()
	ring := filepath.Join(dir, "ring")
	ps := makeFrames(7, 600, t0, 10*time.Millisecond) // every fifth packet is sliced by 100 bytes
	in := filepath.Join(dir, "sliced.pcap")
	writePcap(t, in, ps)
	mustRun(t, "ring", "import", "-ring", ring, "-size", "64M", in)

	for _, c := range []struct {
		expr string
		keep func(orig uint32) bool
	}{
		{"greater 700", func(n uint32) bool { return n >= 700 }},
		{"udp and less 700", func(n uint32) bool { return n <= 700 }},
		{"len > 300 and len < 1000", func(n uint32) bool { return n > 300 && n < 1000 }},
	} {
		// The case must tell the lengths apart: some sliced packet is
		// selected by its original length and not by its stored one.
		var want []testPacket
		differs := 0
		for _, p := range ps {
			if c.keep(p.orig) {
				want = append(want, p)
			}
			if c.keep(p.orig) != c.keep(uint32(len(p.data))) {
				differs++
			}
		}
		if differs == 0 {
			t.Fatalf("%q: no packet where the stored and original lengths give different verdicts", c.expr)
		}

		// tcpdump -r on the input file is the oracle.
		oracle := filepath.Join(dir, "oracle.pcap")
		if out, err := exec.Command(tcpdump, "-nn", "--time-stamp-precision=nano", "-r", in, "-w", oracle, c.expr).CombinedOutput(); err != nil {
			t.Fatalf("tcpdump -r %s %q: %v\n%s", in, c.expr, err, out)
		}
		f, err := os.Open(oracle)
		if err != nil {
			t.Fatal(err)
		}
		byTcpdump, _ := readCapture(t, f)
		f.Close()
		samePackets(t, "tcpdump -r "+c.expr, byTcpdump, want)

		got := filepath.Join(dir, "got.pcap")
		mustRun(t, "extract", "-ring", ring, "-from", rfc(t0), "-to", rfc(t0+int64(time.Hour)), "-filter", c.expr, "-o", got)
		checkCapture(t, got, len(want))
		f, err = os.Open(got)
		if err != nil {
			t.Fatal(err)
		}
		extracted, _ := readCapture(t, f)
		f.Close()
		samePackets(t, "extract -filter "+c.expr, extracted, byTcpdump)
	}
}

// TestExtractEncryptedEqualsClear (issue 17): the same capture imported into
// a clear ring and into an encrypted one extracts to byte-identical files
// (pcap and pcapng, a filter too); without the key, or with the key of
// another ring, the extraction fails naming the key and writes nothing.
func TestExtractEncryptedEqualsClear(t *testing.T) {
	dir := t.TempDir()
	ps := makeFrames(3, 4000, t0, 10*time.Millisecond)
	in := filepath.Join(dir, "in.pcap")
	writePcap(t, in, ps)
	clear, sealed, keys := filepath.Join(dir, "clear"), filepath.Join(dir, "sealed"), filepath.Join(dir, "keys")
	mustRun(t, "ring", "import", "-ring", clear, "-size", "64M", in)
	mustRun(t, "ring", "import", "-ring", sealed, "-size", "64M", "-encrypt", "-key-dir", keys, in)
	if text := mustRun(t, "ring", "info", "-ring", sealed, "-key-dir", keys); !strings.Contains(text, "encrypted yes") || !strings.Contains(text, "packets   4000") {
		t.Errorf("ring info of the encrypted ring:\n%s", text)
	}
	from, to := rfc(t0+5e9), rfc(t0+31e9)
	for _, args := range [][]string{
		{"-format", "pcap"},
		{"-format", "pcapng"},
		{"-filter", "udp and greater 300"},
	} {
		a := mustRun(t, append([]string{"extract", "-ring", clear, "-from", from, "-to", to, "-o", "-"}, args...)...)
		b := mustRun(t, append([]string{"extract", "-ring", sealed, "-key-dir", keys, "-from", from, "-to", to, "-o", "-"}, args...)...)
		if a != b || len(a) < 1000 {
			t.Errorf("extract %v: the encrypted ring gives %d bytes, the clear one %d: not the same", args, len(b), len(a))
		}
	}
	// A clear and an encrypted ring's extraction agree with the input too.
	got, _ := readCapture(t, strings.NewReader(mustRun(t, "extract", "-ring", sealed, "-key-dir", keys, "-from", from, "-to", to, "-o", "-")))
	samePackets(t, "encrypted ring's window", got, window(ps, t0+5e9, t0+31e9))

	other := filepath.Join(dir, "other")
	mustRun(t, "ring", "import", "-ring", filepath.Join(dir, "ring3"), "-size", "64M", "-encrypt", "-key-dir", other, in)
	for _, c := range []struct {
		keyArgs []string
		want    string
	}{
		{nil, "give -key-dir"},
		{[]string{"-key-dir", other}, "does not exist"},
	} {
		outFile := filepath.Join(dir, "w.pcap")
		_, _, err := probeRun(t, append([]string{"extract", "-ring", sealed, "-from", from, "-to", to, "-o", outFile}, c.keyArgs...)...)
		if err == nil || !strings.Contains(err.Error(), "encrypted") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("extract with key flags %v: %v, want an error saying %q", c.keyArgs, err, c.want)
		}
		if _, serr := os.Stat(outFile); serr == nil {
			t.Errorf("extract with key flags %v left %s", c.keyArgs, outFile)
		}
	}
}

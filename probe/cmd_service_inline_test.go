package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/internal/pcapfile"
	"github.com/presscap/presscap/probe/internal/pcapfile/pcapfiletest"
	"github.com/presscap/presscap/probe/internal/status"
)

// runHelperEnv names the configuration TestRunHelper runs `probe run` on.
const runHelperEnv = "PRESSCAP_RUN_HELPER"

// helperStatus is the status listener in the probe's namespace.
const helperStatus = "127.0.0.1:8765"

// TestRunHelper is the process TestRunInline starts in the probe's
// namespace: `probe run` on the configuration, and `probe trigger` for
// each "press" line on stdin.
func TestRunHelper(t *testing.T) {
	cfg := os.Getenv(runHelperEnv)
	if cfg == "" {
		t.Skip("helper process of TestRunInline")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- dispatch(ctx, env{stdout: os.Stdout, stderr: os.Stdout}, []string{"run", "-config", cfg})
	}()
	in := bufio.NewScanner(os.Stdin)
	for n := 0; in.Scan(); n++ {
		switch in.Text() {
		case "press":
			var out bytes.Buffer
			err := dispatch(ctx, env{stdout: &out, stderr: &out}, []string{"trigger", "-config", cfg})
			fmt.Printf("pressed: %v %s\n", err, strings.TrimSpace(out.String()))
		case "status":
			b := []byte("{}")
			if resp, err := http.Get("http://" + helperStatus + "/status.json"); err == nil {
				b, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			fmt.Printf("status %d %s\n", n, bytes.ReplaceAll(b, []byte("\n"), nil))
		}
	}
	cancel()
	fmt.Println("run ended:", <-done)
}

// TestRunInline is `probe run` in inline mode between a router and a
// phone, each in a namespace: the service brings the bridge up over its
// two ports, records each crossing frame exactly once (both ports inbound
// only), and a press saves files holding exactly the frames tcpdump saw
// on either cable end, byte for byte. A bad configuration later still
// brings the bridge up, from the last good one.
func TestRunInline(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root, network namespaces and tcpdump")
	}
	netnstest.Require(t, "ip", "tcpdump")
	probe, router, phone := netnstest.InlineTopology(t)
	netnstest.Run(t, "ip", "-n", probe, "link", "set", "lo", "up")

	// The status page answers on the bridge's address too.
	c := runConfig(t, "", "0.0.0.0:8765")
	c.Links = nil
	c.Network = config.Network{Mode: config.ModeInline, Ports: []config.Port{{Interface: "eth0", Side: "router"}, {Interface: "eth1", Side: "phone"}}}
	c.Trigger.Before = config.Duration(time.Second)
	c.Trigger.After = config.Duration(3 * time.Second)
	// An export of one side, by its name.
	c.Exports = append(c.Exports, config.Export{Name: "phone", Link: "phone"})
	cfgPath := writeConfig(t, c)

	routerMAC, phoneMAC := macOf(t, router, "lan"), macOf(t, phone, "eth0")
	brMAC := macOf(t, probe, "eth0") // the bridge takes its first port's address
	run := startRunHelper(t, probe, cfgPath)
	run.expect(t, "recording on", "network: port eth0 up", "network: port eth1 up")
	netnstest.Run(t, "ip", "-n", probe, "addr", "add", "192.168.77.2/24", "dev", "br0")
	netnstest.Run(t, "ip", "-n", phone, "addr", "add", "192.168.77.3/24", "dev", "eth0")

	// Frames from both sides until the capture has seen some on each
	// port, then a quiet while longer than the window's before: the
	// window holds only what the cable ends' tcpdumps see.
	toPhone, toRouter := netnstest.NewSenderIn(t, router, "lan"), netnstest.NewSenderIn(t, phone, "eth0")
	warm := netnstest.Frames(1)[0]
	testtool.WaitFor(t, "the capture on both ports", time.Minute, func() bool {
		copy(warm, phoneMAC)
		toPhone.Send(warm)
		copy(warm, routerMAC)
		toRouter.Send(warm)
		seen := map[string]uint64{}
		for _, l := range run.status(t).Links {
			seen[l.Name] = l.Seen
		}
		return seen["eth0"] > 0 && seen["eth1"] > 0
	})
	expr := "not ether host " + brMAC.String()
	atRouter := netnstest.StartTcpdumpIn(t, router, "lan", 2048, expr)
	atPhone := netnstest.StartTcpdumpIn(t, phone, "eth0", 2048, expr)
	time.Sleep(c.Trigger.Before.D() + time.Second)
	run.press(t)

	fromPhone := netnstest.Frames(60)[:30]
	fromRouter := netnstest.Frames(60)[30:]
	for _, f := range fromPhone {
		copy(f, routerMAC)
	}
	for _, f := range fromRouter {
		copy(f, phoneMAC)
	}
	if err := toRouter.Send(fromPhone...); err != nil {
		t.Fatal(err)
	}
	if err := toPhone.Send(fromRouter...); err != nil {
		t.Fatal(err)
	}
	lastOf := func(f []byte) func([]netnstest.Packet) bool {
		return func(ps []netnstest.Packet) bool {
			return slices.ContainsFunc(ps, func(p netnstest.Packet) bool { return bytes.Equal(p.Data, f) })
		}
	}
	// The phone fetches the probe's status page through the bridge: the
	// probe's own traffic, not recorded (network.record_own off), not
	// crossing, so not in tcpdump's either.
	fetchStatusIn(t, phone, "192.168.77.2:8765")
	phoneSide := atPhone.Settle(t, lastOf(fromRouter[len(fromRouter)-1]))
	routerSide := atRouter.Settle(t, lastOf(fromPhone[len(fromPhone)-1]))

	run.expect(t, "window #1 saved")
	saved := savedFrames(t, c.Storage.PermDir, "all")
	for _, end := range []struct {
		name string
		ps   []netnstest.Packet
	}{{"router", routerSide}, {"phone", phoneSide}} {
		var want []string
		for _, p := range end.ps {
			want = append(want, hex.EncodeToString(p.Data))
		}
		slices.Sort(want)
		if !slices.Equal(saved, want) {
			t.Errorf("the press saved %d frames, tcpdump on the %s's end saw %d: %s", len(saved), end.name, len(want), firstDifference(saved, want))
		}
	}
	for _, f := range saved {
		if b, _ := hex.DecodeString(f); bytes.Equal(b[:6], brMAC) || bytes.Equal(b[6:12], brMAC) {
			t.Errorf("the probe's own frame was recorded: %.60s", f)
		}
	}
	if len(saved) < len(fromPhone)+len(fromRouter) {
		t.Errorf("saved %d frames, sent %d", len(saved), len(fromPhone)+len(fromRouter))
	}

	// Each frame is on the interface of the port it arrived on, named
	// after its side, marked inbound; the manifest lists the sides.
	for _, line := range strings.Split(strings.TrimSpace(tsharkFields(t, c.Storage.PermDir, "all", "eth.src", "frame.interface_name", "frame.interface_description", "frame.packet_flags_direction")), "\n") {
		f := strings.Split(line, "\t")
		src, err := net.ParseMAC(f[0])
		if err != nil || len(f) != 4 {
			t.Fatalf("tshark line %q", line)
		}
		want := "eth0\trouter\t0x00000001"
		if bytes.Equal(src, phoneMAC) || bytes.Equal(src[:5], fromPhone[0][6:11]) && src[5] < 30 { // fromPhone: frames 0-29
			want = "eth1\tphone\t0x00000001"
		}
		if got := strings.Join(f[1:], "\t"); got != want {
			t.Errorf("frame from %s: interface, side, direction %q, want %q", src, got, want)
		}
	}
	// The side's export holds what arrived on the phone's side, nothing else.
	var phoneFrames []string
	for _, line := range strings.Split(strings.TrimSpace(tsharkFields(t, c.Storage.PermDir, "all", "frame.interface_name", "frame.len")), "\n") {
		if strings.HasPrefix(line, "eth1\t") {
			phoneFrames = append(phoneFrames, line)
		}
	}
	if got := strings.Split(strings.TrimSpace(tsharkFields(t, c.Storage.PermDir, "phone", "frame.interface_name", "frame.len")), "\n"); len(phoneFrames) < len(fromPhone) || !slices.Equal(got, phoneFrames) {
		t.Errorf("the phone side's export holds %d frames, the phone's side of the whole export %d", len(got), len(phoneFrames))
	}
	var man struct {
		Links []struct{ Name, Side string } `json:"links"`
	}
	if err := json.Unmarshal(readManifest(t, c.Storage.PermDir), &man); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(man.Links) != "[{eth0 router} {eth1 phone}]" {
		t.Errorf("manifest links %v, want eth0 on the router's side, eth1 on the phone's", man.Links)
	}

	// Link loss on the phone's side is logged and on the status page,
	// and the next window's manifest reports the gap (issue 12).
	run.press(t)
	pressed := time.Now()
	netnstest.Run(t, "ip", "-n", phone, "link", "set", "eth0", "down")
	run.expect(t, "network: port eth1 down: no link on that side")
	if f := run.status(t).Faults; len(f) != 1 || !strings.Contains(f[0], "port eth1 (side phone) has no link") {
		t.Errorf("status faults with the phone's side down: %q", f)
	}
	netnstest.Run(t, "ip", "-n", phone, "link", "set", "eth0", "up")
	run.expect(t, "window #2 saved")
	ms, _ := filepath.Glob(filepath.Join(c.Storage.PermDir, "*", "*_manifest.json"))
	var gaps []string
	for _, m := range ms {
		b, _ := os.ReadFile(m)
		var man struct {
			From     time.Time `json:"window_from"`
			LinkGaps []struct {
				Link     string
				From, To time.Time
			} `json:"link_gaps"`
		}
		if err := json.Unmarshal(b, &man); err != nil {
			t.Fatal(err)
		}
		for _, g := range man.LinkGaps {
			gaps = append(gaps, g.Link)
			if g.From.Before(pressed.Add(-time.Second)) || g.From.After(time.Now()) || !g.To.IsZero() && g.To.Before(g.From) {
				t.Errorf("gap %+v: not after the press at %v", g, pressed)
			}
		}
	}
	if len(ms) != 2 || fmt.Sprint(gaps) != "[eth1]" {
		t.Errorf("%d manifests report link gaps %v, want one gap of eth1 in the second", len(ms), gaps)
	}
}

// TestRunInlineBadConfig: a configuration that turns invalid still brings
// the bridge up, as the last good one had it.
func TestRunInlineBadConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root and network namespaces")
	}
	probe, _, _ := netnstest.InlineTopology(t)
	netnstest.Run(t, "ip", "-n", probe, "link", "set", "lo", "up")
	c := runConfig(t, "", helperStatus)
	c.Links = nil
	c.Network = config.Network{Mode: config.ModeInline, Ports: []config.Port{{Interface: "eth0"}, {Interface: "eth1"}}}
	b, _ := json.Marshal(c)
	cfgPath := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	run := startRunHelper(t, probe, cfgPath)
	run.expect(t, "recording on", "network: inline mode over [eth0 eth1]")
	run.stop(t)
	netnstest.Run(t, "ip", "-n", probe, "link", "del", "br0")

	// The same file, now with an error elsewhere and the network changed.
	bad := strings.Replace(string(b), `"mode":"inline"`, `"mode":"mirror"`, 1)
	bad = strings.Replace(bad, `"exports":[{"name":"all"`, `"exports":[{"name":"a/b"`, 1)
	if bad == string(b) || !strings.Contains(bad, "a/b") {
		t.Fatalf("could not spoil the configuration: %s", bad)
	}
	if err := os.WriteFile(cfgPath, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	run = startRunHelper(t, probe, cfgPath)
	run.expect(t, "NOT RUNNING, bad configuration", "network: inline mode over [eth0 eth1]")
	if l := netnstest.Run(t, "ip", "-n", probe, "-o", "link", "show", "eth1"); !strings.Contains(l, "master br0") {
		t.Errorf("with a bad configuration eth1 is not in the bridge: %s", l)
	}
}

// runHelper is TestRunHelper running in a namespace.
type runHelper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *syncBuffer
	ended bool
	asked int // lines written to stdin
}

// startRunHelper starts `probe run` on cfgPath in the namespace ns, until
// stop or the end of the test.
func startRunHelper(t *testing.T, ns, cfgPath string) *runHelper {
	t.Helper()
	cmd, stdin, stdout := startChild(t, ns, "TestRunHelper", runHelperEnv+"="+cfgPath)
	r := &runHelper{cmd: cmd, stdin: stdin, out: &syncBuffer{}}
	go io.Copy(r.out, stdout)
	t.Cleanup(func() { r.stop(t) })
	return r
}

// startChild starts the test binary's test named run in the namespace ns
// with the variable env set, its stderr the test's.
func startChild(t *testing.T, ns, run, env string) (*exec.Cmd, io.WriteCloser, io.ReadCloser) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^"+run+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdin, stdout
}

// press presses by `probe trigger` in the service's namespace.
func (r *runHelper) press(t *testing.T) {
	t.Helper()
	r.ask(t, "press")
	r.expect(t, "pressed: <nil>")
}

// ask sends the helper a command.
func (r *runHelper) ask(t *testing.T, what string) {
	t.Helper()
	if _, err := io.WriteString(r.stdin, what+"\n"); err != nil {
		t.Fatal(err)
	}
	r.asked++
}

// status returns the service's status page.
func (r *runHelper) status(t *testing.T) status.Snapshot {
	t.Helper()
	r.ask(t, "status")
	prefix := fmt.Sprintf("status %d ", r.asked-1)
	var line string
	testtool.WaitFor(t, "the status page", time.Minute, func() bool {
		out := r.out.String()
		i := strings.Index(out, prefix)
		if i < 0 {
			return false
		}
		line, _, _ = strings.Cut(out[i+len(prefix):], "\n")
		return true
	})
	var snap status.Snapshot
	if err := json.Unmarshal([]byte(line), &snap); err != nil {
		t.Fatalf("status page %q: %v", line, err)
	}
	return snap
}

// stop ends the service and waits for it.
func (r *runHelper) stop(t *testing.T) {
	if r.ended {
		return
	}
	r.ended = true
	r.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Errorf("probe run: %v", err)
		}
		if t.Failed() {
			t.Logf("probe run said:\n%s", r.out.String())
		}
	case <-time.After(30 * time.Second):
		r.cmd.Process.Kill()
		<-done
		t.Errorf("probe run did not end within 30 s of its stop")
	}
}

// expect waits up to a minute until the service has said each of want.
func (r *runHelper) expect(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		testtool.WaitFor(t, fmt.Sprintf("%q from probe run", w), time.Minute, func() bool { return strings.Contains(r.out.String(), w) })
	}
}

// fetchStatusIn fetches the status page at addr from the namespace ns
// (through the bridge).
func fetchStatusIn(t *testing.T, ns, addr string) {
	t.Helper()
	var page []byte
	err := netnstest.DoIn(ns, func() error {
		conn, err := net.DialTimeout("tcp4", addr, 20*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		host, _, _ := net.SplitHostPort(addr)
		if _, err := io.WriteString(conn, "GET /status.json HTTP/1.0\r\nHost: "+host+"\r\n\r\n"); err != nil {
			return err
		}
		page, err = io.ReadAll(conn)
		return err
	})
	if err != nil || !bytes.Contains(page, []byte(`"links"`)) {
		t.Fatalf("the status page at %s from %s: %v %.200q", addr, ns, err, page)
	}
}

// macOf returns an interface's address in a namespace.
func macOf(t *testing.T, ns, dev string) net.HardwareAddr {
	t.Helper()
	out := netnstest.Run(t, "ip", "netns", "exec", ns, "cat", "/sys/class/net/"+dev+"/address")
	mac, err := net.ParseMAC(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("%s in %s: %v", dev, ns, err)
	}
	return mac
}

// savedFrames returns the frames of the export's capture files under dir, as
// sorted hex strings, after tshark has read each file whole.
func savedFrames(t *testing.T, dir, export string) []string {
	t.Helper()
	tshark := testtool.Path(t, "tshark", "tshark")
	var frames []string
	for _, p := range captureFiles(t, dir, export) {
		if out, err := exec.Command(tshark, "-r", p, "-T", "fields", "-e", "frame.number").CombinedOutput(); err != nil {
			t.Errorf("tshark -r %s: %v\n%s", p, err, out)
		}
		pcapfiletest.CheckReport(t, p)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		r, err := pcapfile.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for {
			pk, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			frames = append(frames, hex.EncodeToString(pk.Data))
		}
	}
	slices.Sort(frames)
	return frames
}

// firstDifference names the first frame one sorted list has and the
// other lacks.
func firstDifference(a, b []string) string {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return "saved, not seen: " + x[:min(len(x), 60)]
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			return "seen, not saved: " + x[:min(len(x), 60)]
		}
	}
	return "the same frames, not as often"
}

// TestLastGoodNetworkLayers: with the layers invalid, the bridge comes from
// the network the service last ran with, else from the image's layer
// alone.
func TestLastGoodNetworkLayers(t *testing.T) {
	t.Setenv(config.EnvVar, "")
	root, state := t.TempDir(), t.TempDir()
	layers := config.LayerPaths()
	for i := range layers {
		layers[i] = filepath.Join(root, layers[i])
	}
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(layers[0], `{"network": {"mode": "inline", "ports": [{"interface": "eth0"}, {"interface": "eth1"}]}}`)
	write(layers[2], `{"storage": {"state_dir": "`+state+`"}, "exports": [{"name": "a/b"}]}`)
	if _, _, err := loadServiceConfig("", layers); err == nil {
		t.Fatal("the spoiled stack is valid")
	}
	n, from, ok := lastGoodNetwork("", layers)
	if !ok || from != layers[0] || n.Mode != config.ModeInline || len(n.Ports) != 2 {
		t.Errorf("without a saved network: %+v from %q (%v), want the image's inline", n, from, ok)
	}

	last := config.DefaultConfig()
	last.Storage.StateDir = state
	last.Network = config.Network{Mode: config.ModeMirror, Ports: []config.Port{{Interface: "eth9"}}}
	if err := saveLastGood(last); err != nil {
		t.Fatal(err)
	}
	n, from, ok = lastGoodNetwork("", layers)
	if !ok || from != filepath.Join(state, lastGoodFile) || n.Mode != config.ModeMirror || n.Ports[0].Interface != "eth9" {
		t.Errorf("with a saved network: %+v from %q (%v), want the saved mirror", n, from, ok)
	}
}

// captureFiles returns the capture files of the export under dir.
func captureFiles(t *testing.T, dir, export string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, "_"+export+".pcapng") || strings.HasSuffix(p, "_"+export+".pcap")) {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no capture file under %s", dir)
	}
	return files
}

// tsharkFields is tshark's fields of every packet of the export's capture
// files under dir.
func tsharkFields(t *testing.T, dir, export string, fields ...string) string {
	t.Helper()
	tshark := testtool.Path(t, "tshark", "tshark")
	var out strings.Builder
	for _, p := range captureFiles(t, dir, export) {
		args := []string{"-r", p, "-T", "fields"}
		for _, f := range fields {
			args = append(args, "-e", f)
		}
		b, err := exec.Command(tshark, args...).Output()
		if err != nil {
			t.Fatalf("tshark -r %s: %v", p, err)
		}
		out.Write(b)
	}
	return out.String()
}

// readManifest returns the one manifest under dir.
func readManifest(t *testing.T, dir string) []byte {
	t.Helper()
	ms, _ := filepath.Glob(filepath.Join(dir, "*", "*_manifest.json"))
	if len(ms) != 1 {
		t.Fatalf("manifests under %s: %q", dir, ms)
	}
	b, err := os.ReadFile(ms[0])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

//go:build systemtest

package systemtest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/crypto/ssh"

	"github.com/presscap/presscap/internal/testing/sshdtest"
	"github.com/presscap/presscap/internal/testing/testtool"
)

// frame builds an Ethernet/IPv4/UDP frame 192.0.2.1:5000 -> 192.0.2.2:dport
// carrying the sequence number in a recognizable payload.
func frame(seq int, dport uint16) []byte {
	payload := []byte(fmt.Sprintf("presscap-e2e seq=%08d ", seq))
	payload = append(payload, bytes.Repeat([]byte{'x'}, 64)...)
	udpLen := 8 + len(payload)
	ipLen := 20 + udpLen
	b := make([]byte, 14+ipLen)
	copy(b[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(b[6:12], []byte{0x02, 0, 0, 0, 0, 0x01})
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(ipLen))
	copy(ip[12:16], []byte{192, 0, 2, 1})
	copy(ip[16:20], []byte{192, 0, 2, 2})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[0:], 5000)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
	copy(udp[8:], payload)
	return b
}

// dportOf is the destination port of frame seq: odd ones go to 7777,
// which the port9999 export filters out.
func dportOf(seq int) uint16 {
	if seq%2 == 1 {
		return 7777
	}
	return 9999
}

var seqRE = regexp.MustCompile(`presscap-e2e seq=(\d{8}) `)

// generator sends frames into the guest's capture NIC through QEMU's UDP
// socket backend on loopback, remembering when each was sent.
type generator struct {
	mu   sync.Mutex
	sent []time.Time // by sequence number
	stop chan struct{}
	done chan struct{}
}

func startGenerator(t *testing.T, conn *net.UDPConn, to *net.UDPAddr, pps int) *generator {
	g := &generator{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(g.done)
		tick := time.NewTicker(time.Second / time.Duration(pps))
		defer tick.Stop()
		for seq := 0; ; seq++ {
			select {
			case <-g.stop:
				return
			case <-tick.C:
			}
			dport := dportOf(seq)
			g.mu.Lock()
			g.sent = append(g.sent, time.Now())
			g.mu.Unlock()
			if _, err := conn.WriteToUDP(frame(seq, dport), to); err != nil {
				t.Errorf("sending frame %d: %v", seq, err)
				return
			}
		}
	}()
	t.Cleanup(g.halt)
	return g
}

func (g *generator) halt() {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	<-g.done
}

func (g *generator) sentAt(seq int) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sent[seq]
}

func (g *generator) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.sent)
}

// ringDisk makes a 1 GiB disk with one ext4 partition labelled PRESSCAP,
// as docs/provider/cabling.md tells the provider to prepare it.
func ringDisk(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "ring.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.Command(testtool.Path(t, "sfdisk", "fdisk"), "-q", p)
	cmd.Stdin = strings.NewReader("label: dos\nstart=2048, type=83\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	size := (int64(1<<30) - 2048*512) >> 10
	if out, err := exec.Command(testtool.Path(t, "mkfs.ext4", "e2fsprogs"), "-q", "-F", "-L", "PRESSCAP",
		"-E", "offset=1048576", p, strconv.FormatInt(size, 10)+"k").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	return p
}

type probeStatus struct {
	ID      string    `json:"id"`
	Started time.Time `json:"started"`
	Storage struct {
		State    string `json:"state"`
		Replaced string `json:"replaced"`
	} `json:"storage"`
	Ring *struct {
		Oldest  time.Time `json:"oldest"`
		Newest  time.Time `json:"newest"`
		Packets uint64    `json:"packets"`
	} `json:"ring"`
	Presses []struct {
		Time time.Time `json:"time"`
	} `json:"recent_presses"`
	Faults []string `json:"faults"`
	Links  []struct {
		Name string `json:"name"`
		statusLinkCounts
	} `json:"links"`
	Process *struct {
		CPUSeconds float64 `json:"cpu_seconds"`
	} `json:"process"`
}

// statusLinkCounts are a link's counters in status.json.
type statusLinkCounts struct {
	Seen    uint64 `json:"seen"`
	Written uint64 `json:"written"`
	Drops   uint64 `json:"drops"`
}

func getProbeStatus(port int, pw string) (probeStatus, error) {
	req, err := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/status.json", port), nil)
	if err != nil {
		return probeStatus{}, err
	}
	req.SetBasicAuth("gokrazy", pw)
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return probeStatus{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return probeStatus{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return probeStatus{}, fmt.Errorf("%s: %s", resp.Status, b)
	}
	var s probeStatus
	if err := json.Unmarshal(b, &s); err != nil {
		return probeStatus{}, fmt.Errorf("%v: %s", err, b)
	}
	return s, nil
}

func waitRecording(t testing.TB, v *vm, statusPort int, pw string, timeout time.Duration) (probeStatus, time.Duration) {
	t.Helper()
	start := time.Now()
	var last string
	for time.Since(start) < timeout {
		s, err := getProbeStatus(statusPort, pw)
		if err == nil && s.Ring != nil && s.Ring.Packets > 0 {
			return s, time.Since(v.started)
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%+v", s)
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("the probe did not record within %s (last: %s)\nserial:\n%s", timeout, last, tail(v.serialLog(t), 5000))
	return probeStatus{}, 0
}

func monitor(t *testing.T, sock, cmd string) {
	t.Helper()
	if err := monitorCmd(sock, cmd); err != nil {
		t.Fatal(err)
	}
}

// monitorCmd gives the QEMU monitor one command, for a goroutine (no t).
func monitorCmd(sock, cmd string) error {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return fmt.Errorf("QEMU monitor: %w", err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "%s\n", cmd); err != nil {
		return fmt.Errorf("QEMU monitor: %w", err)
	}
	time.Sleep(500 * time.Millisecond)
	return nil
}

// uploadedCaptures lists the capture files the server holds under their
// final names.
func uploadedCaptures(dir string) []string {
	all, _ := filepath.Glob(filepath.Join(dir, "*.pcap*"))
	var files []string
	for _, f := range all {
		if !strings.HasSuffix(f, ".part") {
			files = append(files, f)
		}
	}
	return files
}

func readSeqs(t *testing.T, path string) []int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	var seqs []int
	add := func(data []byte) {
		if m := seqRE.FindSubmatch(data); m != nil {
			n, _ := strconv.Atoi(string(m[1]))
			seqs = append(seqs, n)
			// Byte for byte what the generator sent (no truncation, no
			// padding, no corruption on the way through QEMU and back).
			if want := frame(n, dportOf(n)); !bytes.Equal(data, want) {
				t.Errorf("%s: seq %d is %d bytes % x, sent %d bytes % x", filepath.Base(path), n, len(data), data, len(want), want)
			}
		}
	}
	var r gopacket.PacketDataSource
	if binary.LittleEndian.Uint32(magic[:]) == 0x0A0D0D0A {
		r, err = pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	} else {
		r, err = pcapgo.NewReader(f)
	}
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for {
		data, _, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		add(data)
	}
	return seqs
}

// e2e is the provider's side of an end-to-end run: OpenSSH on 127.0.0.1
// as the SFTP server (reached from the guest at 10.0.2.100:22 through an
// explicit guestfwd) and the directory the probe uploads to.
type e2e struct {
	srv    *sshdtest.Server
	socat  string // the guest's forward to srv (sshdForward)
	remote string
	// seen collects the files of earlier presses, so each press's check
	// sees only its own.
	seen string
	// tunnelWeb and tunnelStatus are the ports on the host's loopback the
	// probe's key may listen on (permitlisten) for its reverse tunnel.
	tunnelWeb, tunnelStatus int
}

// setupE2E starts the SFTP server and gives the instance inst a probe
// configuration that captures eth1, takes a press of the QEMU keyboard's
// PgDn, exports all packets and those to UDP port 9999, and uploads them
// right after the capture with a key the server accepts.
func setupE2E(t *testing.T, dir, inst string) *e2e {
	t.Helper()
	srv := sshdtest.Start(t, sshdtest.Options{})
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "presscap-systemtest")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(inst, "upload_key"), pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	e := &e2e{srv: srv, socat: testtool.Path(t, "socat", "socat"), remote: filepath.Join(dir, "incoming"), seen: filepath.Join(dir, "seen"),
		tunnelWeb: freePort(t), tunnelStatus: freePort(t)}
	// The key line as docs/provider/updating.md gives it for the tunnel.
	srv.AuthorizeLine(fmt.Sprintf(`restrict,port-forwarding,permitlisten="127.0.0.1:%d",permitlisten="127.0.0.1:%d" %s`,
		e.tunnelWeb, e.tunnelStatus, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))))
	for _, d := range []string{e.remote, e.seen} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	probeCfg := map[string]any{
		"links": []map[string]string{{"interface": "eth1", "name": "capture"}},
		"ring":  map[string]any{"size": "256MiB", "rules": []any{}}, // whole packets, compared byte for byte
		"trigger": map[string]any{
			"before": "10s", "after": "5s",
			"devices": []map[string]any{{"name": "QEMU", "keys": []string{"KEY_PAGEDOWN"}}},
		},
		"exports": []map[string]string{{"name": "all"}, {"name": "port9999", "filter": "udp dst port 9999"}},
		"upload": map[string]any{
			"enable": true, "server": "10.0.2.100:22", "user": "root", "remote_dir": e.remote,
			"auth": "key", "key_file": "/etc/presscap/upload_key",
			"host_key":      strings.TrimSpace(string(ssh.MarshalAuthorizedKey(srv.HostKey))),
			"after_capture": true,
		},
		"clock": map[string]any{"time_zone": "UTC"},
		// A tunnel request is seen within 10 s (the default 5 min is
		// for a fleet).
		"tunnel": map[string]any{"check_interval": "10s"},
	}
	pc, _ := json.MarshalIndent(probeCfg, "", "  ")
	if err := os.WriteFile(filepath.Join(inst, "probe.json"), pc, 0o644); err != nil {
		t.Fatal(err)
	}
	var gc map[string]any
	cb, err := os.ReadFile(filepath.Join(inst, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(cb, &gc); err != nil {
		t.Fatal(err)
	}
	pkgCfg := gc["PackageConfig"].(map[string]any)["github.com/presscap/presscap/probe"].(map[string]any)
	pkgCfg["ExtraFilePaths"].(map[string]any)["/etc/presscap/upload_key"] = "upload_key"
	cb, _ = json.MarshalIndent(gc, "", "    ")
	if err := os.WriteFile(filepath.Join(inst, "config.json"), cb, 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// guestNet are the user-network forwards an end-to-end VM needs: the
// probe's status page on statusPort, the SFTP server inside the guest.
func (e *e2e) guestNet(statusPort int) []string {
	return []string{
		fmt.Sprintf("hostfwd=tcp:127.0.0.1:%d-:8080", statusPort),
		e.sshdForward(),
	}
}

// captureNIC is the guest's eth1: QEMU's UDP socket backend on loopback.
// Frames written to qemuAddr from host appear on the guest's eth1; args
// attach it.
type captureNIC struct {
	host     *net.UDPConn
	qemuAddr *net.UDPAddr
	args     []string
}

func newCaptureNIC(t testing.TB) *captureNIC {
	t.Helper()
	host, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	qemuAddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: freePort(t)}
	return &captureNIC{host: host, qemuAddr: qemuAddr, args: []string{
		"-netdev", fmt.Sprintf("socket,id=cap,udp=%s,localaddr=%s", host.LocalAddr(), qemuAddr),
		"-device", "virtio-net-pci,netdev=cap,romfile=,mac=52:54:00:12:34:99",
	}}
}

// exportsWant maps each export a press must save to the UDP destination
// port its filter keeps (0: every frame).
type exportsWant map[string]uint16

// imageExports are the exports setupE2E gives the probe.
var imageExports = exportsWant{"all": 0, "port9999": 9999}

// captureExportRE takes the export's name from a capture file's name
// (<host>_<stamp>_<export>.pcap).
var captureExportRE = regexp.MustCompile(`_([^_]+)\.pcap(ng)?$`)

// pressAndCheck checks a press against the image's exports (see
// pressAndCheckExports).
func (e *e2e) pressAndCheck(t *testing.T, v *vm, gen *generator, statusPort int, pw string) time.Time {
	t.Helper()
	return e.pressAndCheckExports(t, v, gen, statusPort, pw, imageExports)
}

// pressAndCheckExports lets the ring fill past the before-window, presses
// the presenter stand-in through the QEMU monitor, and checks what reaches
// the SFTP server: one file for each export of want and no other, valid
// for capinfos, every packet byte for byte a frame the generator sent
// inside the window, each export's filter applied, at most a tenth of the
// inner window missing. It returns the press time.
func (e *e2e) pressAndCheckExports(t *testing.T, v *vm, gen *generator, statusPort int, pw string, want exportsWant) time.Time {
	t.Helper()
	// Earlier presses' files and health reports move aside; what the
	// provider placed under fleet/ (configuration, releases) stays.
	old, _ := os.ReadDir(e.remote)
	for _, f := range old {
		if f.Name() == "fleet" {
			continue
		}
		if err := os.Rename(filepath.Join(e.remote, f.Name()), filepath.Join(e.seen, f.Name())); err != nil {
			t.Fatal(err)
		}
	}
	reports, _ := filepath.Glob(filepath.Join(e.remote, "fleet", "status", "*.json"))
	for _, r := range reports {
		if err := os.Rename(r, filepath.Join(e.seen, fmt.Sprintf("%d-%s", time.Now().UnixNano(), filepath.Base(r)))); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(12 * time.Second)
	firstSeq := gen.count()
	press := time.Now()
	monitor(t, v.monitor, "sendkey pgdn")
	t.Logf("pressed at seq %d", firstSeq)

	// Files arrive after the after-window, the save and the upload.
	var files []string
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		// The manifest goes last, so once it is under its final name the
		// PCAPs are too; ".part" names are uploads still in flight.
		manifests, _ := filepath.Glob(filepath.Join(e.remote, "*_manifest.json"))
		files = uploadedCaptures(e.remote)
		if len(manifests) >= 1 && len(files) >= len(want) {
			break
		}
		time.Sleep(time.Second)
	}
	if len(files) < len(want) {
		all, _ := os.ReadDir(e.remote)
		s, _ := getProbeStatus(statusPort, pw)
		t.Fatalf("got %d capture files on the SFTP server (%v), want %d\nstatus: %+v\nsshd: %s\nserial:\n%s",
			len(files), all, len(want), s, tail(e.srv.Log(), 2000), tail(v.serialLog(t), 5000))
	}
	saved := map[string]bool{}
	for _, f := range files {
		m := captureExportRE.FindStringSubmatch(f)
		if m == nil {
			t.Errorf("%s: no export in the name", filepath.Base(f))
			continue
		}
		if _, ok := want[m[1]]; !ok || saved[m[1]] {
			t.Errorf("%s: export %q is not one the probe should save once (want %v)", filepath.Base(f), m[1], want)
		}
		saved[m[1]] = true
	}
	for name := range want {
		if !saved[name] {
			t.Errorf("no file of export %q among %v", name, files)
		}
	}
	t.Logf("bench: press to files on the SFTP server %.1f s (after = 5 s)", time.Since(press).Seconds())

	capinfos := testtool.Path(t, "capinfos", "wireshark-common")
	for _, f := range files {
		if out, err := exec.Command(capinfos, f).CombinedOutput(); err != nil {
			t.Errorf("capinfos %s: %v\n%s", f, err, out)
		}
		seqs := readSeqs(t, f)
		got := map[int]bool{}
		for _, s := range seqs {
			got[s] = true
			at := gen.sentAt(s)
			// Generous bounds: guest and host clocks differ a little.
			if at.Before(press.Add(-10*time.Second-3*time.Second)) || at.After(press.Add(5*time.Second+3*time.Second)) {
				t.Errorf("%s holds seq %d sent at press%+.1fs, outside the window [-10s, +5s]", filepath.Base(f), s, at.Sub(press).Seconds())
			}
		}
		var port uint16 // the frames the export's filter keeps (0: all)
		if m := captureExportRE.FindStringSubmatch(f); m != nil {
			port = want[m[1]]
		}
		missing, expected := 0, 0
		for s := 0; s < gen.count(); s++ {
			at := gen.sentAt(s)
			if at.Before(press.Add(-8*time.Second)) || at.After(press.Add(3*time.Second)) {
				continue
			}
			if port != 0 && dportOf(s) != port {
				if got[s] {
					t.Errorf("%s holds seq %d, to port %d", filepath.Base(f), s, dportOf(s))
				}
				continue
			}
			expected++
			if !got[s] {
				missing++
			}
		}
		t.Logf("%s: %d packets, %d of %d expected in the inner window missing", filepath.Base(f), len(seqs), missing, expected)
		if expected == 0 || missing > expected/10 {
			t.Errorf("%s: %d of %d packets sent well inside the window are missing", filepath.Base(f), missing, expected)
		}
	}
	return press
}

func TestCaptureEndToEnd(t *testing.T) {
	dir, workdir, tool, inst := setup(t, "_systemtest-e2e")
	e := setupE2E(t, dir, inst)
	releaseKey := enableReleases(t, dir, inst)

	tsA := time.Now().UTC().Truncate(time.Second)
	disk := filepath.Join(dir, "a.img")
	buildImage(t, tool, inst, disk, workdir, tsA)
	// The update after the press meets the device's own password.
	pw, pwFile := seedDevicePassword(t, disk, dir)

	nic := newCaptureNIC(t)
	statusPort := freePort(t)
	ring := ringDisk(t, dir)
	v := startVM(t, inst, disk, ring, dir, e.guestNet(statusPort), nic.args)
	v.pwFile = pwFile
	gen := startGenerator(t, nic.host, nic.qemuAddr, 40)
	_, upDur := v.waitUp(t, pw, tsA.Format(time.RFC3339), 5*time.Minute)
	_, recDur := waitRecording(t, v, statusPort, pw, 3*time.Minute)
	t.Logf("bench: QEMU start to web UI %.1f s, to recording %.1f s (TCG, cortex-a72; recording/web UI %.2f)",
		upDur.Seconds(), recDur.Seconds(), recDur.Seconds()/upDur.Seconds())

	press := e.pressAndCheck(t, v, gen, statusPort, pw)
	e.checkReport(t, pw)

	// Update the running probe; the ring on the USB disk survives.
	before, err := getProbeStatus(statusPort, pw)
	if err != nil || before.Ring == nil {
		t.Fatalf("status before the update: %+v %v", before, err)
	}
	// The update goes through the reverse tunnel the probe opens on the
	// server when asked (issue 14), as to a probe behind a customer's NAT;
	// it opens while image B builds.
	tunnelFile := e.requestTunnel(t)
	tsB := tsA.Add(time.Minute)
	diskB := filepath.Join(dir, "b.img")
	buildImage(t, tool, inst, diskB, workdir, tsB)
	e.checkTunnel(t, v, pw, tsA.Format(time.RFC3339))
	pushStart := time.Now()
	out, err := pushUpdateTo(tool, inst, diskB, fmt.Sprintf("https://127.0.0.1:%d", e.tunnelWeb), v)
	if err != nil {
		t.Fatalf("image update through the tunnel: %v\n%s\nsshd: %s", err, out, tail(e.srv.Log(), 2000))
	}
	t.Logf("bench: image update through the tunnel (push, reboot, build B answering through the reopened tunnel) %.1f s", time.Since(pushStart).Seconds())
	after, _ := waitRecording(t, v, statusPort, pw, 3*time.Minute)
	if !after.Ring.Oldest.Before(press) {
		t.Errorf("ring after the update starts at %s, before it started at %s: the ring did not survive", after.Ring.Oldest, before.Ring.Oldest)
	}
	// Removed, the request closes the tunnel (checked at the end, when
	// the pulled releases have had their time).
	if err := os.Remove(tunnelFile); err != nil {
		t.Fatal(err)
	}
	e.checkPulledUpdates(t, v, tool, inst, workdir, dir, releaseKey, pw, diskB, tsA.Add(2*time.Minute), tsA.Add(3*time.Minute))
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", e.tunnelWeb), time.Second); err == nil {
		c.Close()
		t.Errorf("the tunnel's port still listens on the server after its request was removed")
	}
	gen.halt()
}

// requestTunnel asks the VM's probe (its id from its health report) for
// the reverse tunnel on the ports its key may listen on, and returns the
// request file.
func (e *e2e) requestTunnel(t *testing.T) string {
	t.Helper()
	found, _ := filepath.Glob(filepath.Join(e.remote, "fleet", "status", "*.json"))
	if len(found) != 1 {
		t.Fatalf("health reports on the server: %v, want one", found)
	}
	id := strings.TrimSuffix(filepath.Base(found[0]), ".json")
	p := filepath.Join(e.remote, "fleet", "tunnel", id)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("web=%d\nstatus=%d\nby=systemtest\nreason=push update through the tunnel\n", e.tunnelWeb, e.tunnelStatus)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkTunnel waits until the VM's web UI answers build through the
// tunnel's web port on the server's loopback (gokrazy's HTTPS, the
// instance's certificate) and its status page through the status port.
func (e *e2e) checkTunnel(t *testing.T, v *vm, pw, build string) {
	t.Helper()
	tg := v.target(pw)
	tg.BaseURL = fmt.Sprintf("https://127.0.0.1:%d", e.tunnelWeb)
	var last error
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := tg.GetStatus(ctx)
		cancel()
		if err == nil && s.BuildTimestamp == build {
			if st, err := getProbeStatus(e.tunnelStatus, pw); err != nil || st.Ring == nil {
				t.Fatalf("the status page through the tunnel: %+v %v", st, err)
			}
			return
		}
		last = err
		if err == nil {
			last = fmt.Errorf("build %s", s.BuildTimestamp)
		}
	}
	t.Fatalf("the web UI did not answer through the tunnel's port %d (last: %v)\nsshd: %s\nserial:\n%s", e.tunnelWeb, last, tail(e.srv.Log(), 2000), tail(v.serialLog(t), 4000))
}

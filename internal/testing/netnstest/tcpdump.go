package netnstest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
)

// Packet is one packet tcpdump captured.
type Packet struct {
	Time    int64 // Unix ns
	OrigLen int
	Data    []byte
}

// Tcpdump runs `tcpdump -i` as the oracle, writing nanosecond PCAP with
// each packet flushed at once (-U), as root (-Z root: Debian's tcpdump
// otherwise drops privileges before opening its file).
//
// Not --immediate-mode: libpcap then uses fixed TPACKET_V2 slots sized
// from the snap length (about 64 KiB each on a veth with GSO/GRO on), so
// -B 16 MiB holds some 250 packets and a burst of 600 loses most of them;
// in block mode they pack. Blocks arrive up to libpcap's 1 s timeout
// late, which is why Settle conditions on what was sent.
type Tcpdump struct {
	cmd    *exec.Cmd
	iface  string
	file   string
	stderr *bytes.Buffer
}

// StartTcpdump starts tcpdump on iface with snap length snap and filter
// expr (may be empty) and returns once it is listening.
func StartTcpdump(t testing.TB, iface string, snap int, expr string) *Tcpdump {
	t.Helper()
	return StartTcpdumpIn(t, "", iface, snap, expr)
}

// StartTcpdumpIn is StartTcpdump on an interface inside the namespace ns
// ("" is the test's own).
func StartTcpdumpIn(t testing.TB, ns, iface string, snap int, expr string) *Tcpdump {
	t.Helper()
	return startTcpdump(t, ns, iface, snap, expr)
}

// StartTcpdumpBuffer is StartTcpdump with a kernel buffer of bufKiB
// instead of 16 MiB, for tests that push tens of MB/s through a veth: a
// stall of tcpdump's writer then costs the oracle no packet.
func StartTcpdumpBuffer(t testing.TB, iface string, snap int, expr string, bufKiB int) *Tcpdump {
	t.Helper()
	// tcpdump takes the last -B it is given.
	return startTcpdump(t, "", iface, snap, expr, "-B", strconv.Itoa(bufKiB))
}

// StartTcpdumpInbound is StartTcpdump of only what arrives on iface
// (tcpdump -Q in).
func StartTcpdumpInbound(t testing.TB, iface string, snap int, expr string) *Tcpdump {
	t.Helper()
	return startTcpdump(t, "", iface, snap, expr, "-Q", "in")
}

func startTcpdump(t testing.TB, ns, iface string, snap int, expr string, extra ...string) *Tcpdump {
	t.Helper()
	Require(t, "tcpdump")
	file := filepath.Join(t.TempDir(), iface+".pcap")
	args := []string{"tcpdump", "-i", iface, "-w", file, "-U", "-n", "-Z", "root", "-B", "16384", "--time-stamp-precision=nano", "-s", strconv.Itoa(snap)}
	args = append(args, extra...)
	if expr != "" {
		args = append(args, expr)
	}
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tcpdump: %v", err)
	}
	pw.Close()
	td := &Tcpdump{cmd: cmd, iface: iface, file: file, stderr: &bytes.Buffer{}}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// tcpdump prints "listening on" once its socket is bound and filtered.
	ready := make(chan error, 1)
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			mu.Lock()
			td.stderr.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if !sent && strings.Contains(sc.Text(), "listening on") {
				ready <- nil
				sent = true
			}
		}
		if !sent {
			ready <- fmt.Errorf("tcpdump ended before listening")
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("%v: %s", err, td.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("tcpdump not listening after 30s")
	}
	return td
}

// Stop ends tcpdump and returns what it wrote.
func (td *Tcpdump) Stop(t testing.TB) []Packet {
	t.Helper()
	td.cmd.Process.Signal(syscall.SIGINT)
	td.cmd.Wait()
	return td.Packets(t)
}

// settleQuiet is how long tcpdump's file must stay unchanged before Settle
// stops it, after the condition on what was sent has held: longer than
// libpcap's 1 s block timeout, a margin for anything after that frame.
const settleQuiet = 1500 * time.Millisecond

// Settle stops tcpdump once it has caught up and returns its packets.
// libpcap hands packets over a kernel block at a time, up to its 1 s
// timeout late, and a loaded machine may run tcpdump later still, while a
// partly filled block is lost at exit; so stopping after a fixed sleep can
// lose what tcpdump did receive. Settle waits until done (if not nil)
// holds for what tcpdump has written, and then until the file has not been
// written for 1.5 s (by its modification time, so a tcpdump that went
// quiet while another one settled is not waited for again). done should be
// about what
// was SENT (AtLeast(frames sent), HasFrame(the last one the filter keeps),
// a packet after the window): a condition on what the code under test
// recorded would let a capture that is short stop the oracle short too.
// It gives up after 30 s without failing: the comparison that follows then
// shows what is missing.
func (td *Tcpdump) Settle(t testing.TB, done func([]Packet) bool) []Packet {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	n := 0
	for {
		ps := td.Packets(t)
		n = len(ps)
		if done == nil || done(ps) {
			fi, err := os.Stat(td.file)
			if err != nil {
				t.Fatalf("tcpdump output: %v", err)
			}
			if time.Since(fi.ModTime()) >= settleQuiet {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Logf("tcpdump on %s not settled after 30s (%d packets)", td.iface, n)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return td.Stop(t)
}

// AtLeast is a Settle condition: tcpdump has written n packets or more.
func AtLeast(n int) func([]Packet) bool {
	return func(ps []Packet) bool { return len(ps) >= n }
}

// HasFrame is a Settle condition: tcpdump has written frame i of Frames.
// Frames sent in order reach tcpdump in order, so with i the last frame
// sent that the filter keeps, tcpdump then has every frame it will get.
func HasFrame(i int) func([]Packet) bool {
	return func(ps []Packet) bool {
		for j := len(ps) - 1; j >= 0; j-- {
			if FrameID(ps[j].Data) == i {
				return true
			}
		}
		return false
	}
}

// LastKept returns the index of the last of frames that match keeps (-1
// if none): the frame for tcpdump with the same filter to settle on.
func LastKept(match func([]byte) bool, frames [][]byte) int {
	for i := len(frames) - 1; i >= 0; i-- {
		if match(frames[i]) {
			return i
		}
	}
	return -1
}

// FrameID is the index Frames wrote into a frame's source MAC address.
func FrameID(data []byte) int {
	if len(data) < 12 {
		return -1
	}
	return int(data[10])<<8 | int(data[11])
}

// Packets returns what tcpdump has written so far.
func (td *Tcpdump) Packets(t testing.TB) []Packet {
	t.Helper()
	f, err := os.Open(td.file)
	if err != nil {
		t.Fatalf("tcpdump output: %v", err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil // the file header is not written yet
	}
	if err != nil {
		t.Fatalf("tcpdump output %s: %v", td.file, err)
	}
	var out []Packet
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		out = append(out, Packet{Time: ci.Timestamp.UnixNano(), OrigLen: ci.Length, Data: data})
	}
	return out
}

// Frames builds test traffic: untagged frames of many sizes, 802.1Q tags
// with and without priority, priority-only tags (VLAN 0), an all-zero tag,
// and 802.1ad double tags, with two EtherTypes so that filters have
// something to choose between.
//
// Frame i carries i in the last two bytes of its source MAC address and,
// as a 32-bit number, right after its EtherType.
func Frames(n int) [][]byte {
	var out [][]byte
	// 13 sizes, 7 kinds of tag and 2 EtherTypes (every third frame):
	// coprime, so every combination occurs.
	sizes := []int{60, 64, 68, 99, 100, 101, 103, 104, 105, 128, 500, 1000, 1514}
	for i := 0; i < n; i++ {
		size := sizes[i%len(sizes)]
		etype := uint16(0x88b5)
		if i%3 == 2 {
			etype = 0x88b6
		}
		var hdr []byte
		hdr = append(hdr, 0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, byte(i>>8), byte(i))
		switch i % 7 {
		case 1: // 802.1Q VLAN 10, priority 3
			hdr = binary.BigEndian.AppendUint16(hdr, 0x8100)
			hdr = binary.BigEndian.AppendUint16(hdr, 3<<13|10)
		case 3: // 802.1ad outer VLAN 100, inner 802.1Q VLAN 20
			hdr = binary.BigEndian.AppendUint16(hdr, 0x88a8)
			hdr = binary.BigEndian.AppendUint16(hdr, 100)
			hdr = binary.BigEndian.AppendUint16(hdr, 0x8100)
			hdr = binary.BigEndian.AppendUint16(hdr, 20)
		case 4: // priority tag: VLAN 0, priority 5
			hdr = binary.BigEndian.AppendUint16(hdr, 0x8100)
			hdr = binary.BigEndian.AppendUint16(hdr, 5<<13)
		case 5: // 802.1Q VLAN 10, no priority
			hdr = binary.BigEndian.AppendUint16(hdr, 0x8100)
			hdr = binary.BigEndian.AppendUint16(hdr, 10)
		case 6: // 802.1Q tag of all zeroes
			hdr = binary.BigEndian.AppendUint16(hdr, 0x8100)
			hdr = binary.BigEndian.AppendUint16(hdr, 0)
		}
		hdr = binary.BigEndian.AppendUint16(hdr, etype)
		f := make([]byte, size)
		copy(f, hdr)
		for j := len(hdr); j < size; j++ {
			f[j] = byte(i + j)
		}
		binary.BigEndian.PutUint32(f[len(hdr):], uint32(i))
		out = append(out, f)
	}
	return out
}

package netnstest

import (
	"bytes"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPairCarriesFrames sends a frame from the namespace and reads it on
// the host end with a plain packet socket, then unplugs and replugs.
func TestPairCarriesFrames(t *testing.T) {
	p := NewPair(t)
	frame := make([]byte, 60)
	copy(frame, []byte{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x88, 0xb5})
	copy(frame[14:], "netnstest")

	recv := func() []byte {
		ifi, err := net.InterfaceByName(p.Host)
		if err != nil {
			t.Fatal(err)
		}
		// Protocol 0 until the bind: a packet socket created with
		// ETH_P_ALL takes frames from every interface until it is bound,
		// and other test packages send on their veths meanwhile.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			t.Fatal(err)
		}
		tv := unix.NsecToTimeval(int64(10 * time.Second))
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		s := p.NewSender(t)
		if err := s.Send(frame); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2048)
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Fatalf("receive on %s: %v", p.Host, err)
		}
		return buf[:n]
	}
	if got := recv(); !bytes.Equal(got, frame) {
		t.Fatalf("host end got %x, want %x", got, frame)
	}

	before, _ := net.InterfaceByName(p.Host)
	p.Unplug(t)
	if _, err := net.InterfaceByName(p.Host); err == nil {
		t.Fatalf("%s still exists after Unplug", p.Host)
	}
	p.Replug(t, true)
	after, err := net.InterfaceByName(p.Host)
	if err != nil {
		t.Fatalf("%s missing after Replug: %v", p.Host, err)
	}
	if after.Index == before.Index {
		t.Errorf("replugged interface kept ifindex %d; want a new one", after.Index)
	}
	if got := recv(); !bytes.Equal(got, frame) {
		t.Fatalf("after replug host end got %x, want %x", got, frame)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

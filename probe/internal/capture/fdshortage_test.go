package capture

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/internal/testing/testtool"
)

// TestFDShortageIsNotInterfaceGone: while the process has no file
// descriptor left (a flood of connections to the status page), the capture
// goes on recording on its socket; it neither takes the failed look at the
// interface for "interface gone" nor closes and reopens the socket.
func TestFDShortageIsNotInterfaceGone(t *testing.T) {
	p := netnstest.NewPair(t)
	var log testtool.Log
	c, stop := startCapture(t, Config{Links: []Link{{Name: p.Host, ID: 5}}, Logf: log.Logf}, newMemSink())
	s := p.NewSender(t)
	waitOpen(t, c)
	before := netnstest.Frames(50)
	if err := s.Send(before...); err != nil {
		t.Fatal(err)
	}
	waitWritten(t, c, 0, 50)

	release := testtool.ExhaustFDs(t)
	if _, err := os.Open("/dev/null"); !errors.Is(err, syscall.EMFILE) {
		release()
		t.Fatalf("descriptors not exhausted: open = %v", err)
	}
	// The capture looks at its interface every second: let it look twice
	// while nothing is left, with packets flowing; the count of its looks
	// says when, however slow the machine.
	during := netnstest.Frames(80)
	checks := &c.links[0].checks
	from := checks.Load()
	deadline := time.Now().Add(30 * time.Second)
	n := 0
	for ; checks.Load() < from+2; n++ {
		if time.Now().After(deadline) {
			release()
			t.Fatalf("the capture looked at its interface %d times in 30 s, want 2", checks.Load()-from)
		}
		if err := s.Send(during[n%len(during)]); err != nil {
			release()
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	release()
	waitWritten(t, c, 0, uint64(50+n))
	stop()
	st := c.Stats()[0]
	if strings.Contains(log.String(), "interface gone") || st.Reopens != 0 || st.Dropped() != 0 || st.Seen != st.Written {
		t.Errorf("stats %+v; log:\n%s\nwant no reopen, no drops, no \"interface gone\"", st, log.String())
	}
	if st.Written != uint64(50+n) {
		t.Errorf("%d packets written, %d sent", st.Written, 50+n)
	}
}

func TestShortage(t *testing.T) {
	for _, tc := range []struct {
		err      error
		shortage bool
	}{
		{fmt.Errorf("interface %q: %w", "x", unix.ENODEV), false},
		{unix.ENXIO, false},
		{errors.New(`interface "x": hardware type 768 (ARPHRD) is not supported`), false},
		{fmt.Errorf("socket: %w", unix.EMFILE), true},
		{unix.ENFILE, true},
		{unix.ENOMEM, true},
	} {
		if got := shortage(tc.err); got != tc.shortage {
			t.Errorf("shortage(%v) = %v, want %v", tc.err, got, tc.shortage)
		}
	}
}

// TestInterfaceState: present and up, down, absent, and an error (not
// "absent") while the process has no descriptor left.
func TestInterfaceState(t *testing.T) {
	p := netnstest.NewPair(t)
	check := func(what string, wantPresent, wantUp, wantErr bool) {
		t.Helper()
		present, up, err := InterfaceState(p.Host)
		if present != wantPresent || up != wantUp || (err != nil) != wantErr {
			t.Errorf("%s: InterfaceState = %v, %v, %v; want %v, %v, error %v", what, present, up, err, wantPresent, wantUp, wantErr)
		}
	}
	check("up", true, true, false)
	release := testtool.ExhaustFDs(t)
	check("no descriptor left", false, false, true)
	release()
	p.SetUp(t, false)
	check("down", true, false, false)
	p.Unplug(t)
	check("unplugged", false, false, false)
}

package capture

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/presscap/presscap/probe/internal/netnstest"
)

// exhaustFDs lowers the process's descriptor limit to a few above what is
// open and takes every remaining descriptor, as a flood of connections
// would; the returned func gives them back and restores the limit.
func exhaustFDs(t *testing.T) func() {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = uint64(len(ents)) + 32
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	var held []int
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			if !errors.Is(err, unix.EMFILE) {
				t.Fatalf("open /dev/null: %v", err)
			}
			break
		}
		held = append(held, fd)
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			for _, fd := range held {
				unix.Close(fd)
			}
			unix.Setrlimit(unix.RLIMIT_NOFILE, &old)
		})
	}
	t.Cleanup(release)
	return release
}

// logBuf collects the capture's log lines.
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) logf(format string, args ...any) {
	l.mu.Lock()
	fmt.Fprintf(&l.b, format+"\n", args...)
	l.mu.Unlock()
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFDShortageIsNotInterfaceGone: while the process has no file
// descriptor left (a flood of connections to the status page), the capture
// goes on recording on its socket; it neither takes the failed look at the
// interface for "interface gone" nor closes and reopens the socket.
func TestFDShortageIsNotInterfaceGone(t *testing.T) {
	p := netnstest.NewPair(t)
	var log logBuf
	c, stop := startCapture(t, Config{Links: []Link{{Name: p.Host, ID: 5}}, Logf: log.logf}, newMemSink())
	s := p.NewSender(t)
	waitOpen(t, c)
	before := netnstest.Frames(50)
	if err := s.Send(before...); err != nil {
		t.Fatal(err)
	}
	waitWritten(t, c, 0, 50)

	release := exhaustFDs(t)
	if _, err := os.Open("/dev/null"); !errors.Is(err, syscall.EMFILE) {
		release()
		t.Fatalf("descriptors not exhausted: open = %v", err)
	}
	// The capture looks at its interface every second: let it look twice
	// while nothing is left, with packets flowing.
	during := netnstest.Frames(80)
	end := time.Now().Add(2500 * time.Millisecond)
	n := 0
	for ; time.Now().Before(end); n++ {
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

func TestIfaceGone(t *testing.T) {
	for _, tc := range []struct {
		err  error
		gone bool
	}{
		{fmt.Errorf("interface %q: %w", "x", unix.ENODEV), true},
		{unix.ENXIO, true},
		{errors.New(`interface "x": hardware type 768 (ARPHRD) is not supported`), true},
		{fmt.Errorf("socket: %w", unix.EMFILE), false},
		{unix.ENFILE, false},
		{unix.ENOMEM, false},
	} {
		if got := ifaceGone(tc.err); got != tc.gone {
			t.Errorf("ifaceGone(%v) = %v, want %v", tc.err, got, tc.gone)
		}
	}
}

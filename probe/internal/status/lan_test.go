package status

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/internal/testing/testtool"
)

func TestHostCheck(t *testing.T) {
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(resolv, []byte("nameserver 192.168.178.1\nsearch fritz.box home.arpa.\n"), 0o644)
	h := newHostCheck(Hosts{Names: []string{"Probe-17"}, ResolvConf: resolv})
	for _, host := range []string{"192.168.1.5", "192.168.1.5:8080", "[fe80::1]:8080", "[::1]", "::1", "probe-17", "PROBE-17:8080",
		"probe-17.local", "probe-17.local.", "probe-17.fritz.box:8080", "probe-17.home.arpa", "localhost:8080"} {
		if !h.allowed(host) {
			t.Errorf("Host %q refused", host)
		}
	}
	for _, host := range []string{"", "evil.example", "evil.example:8080", "probe-17.evil.example", "probe-17.local.evil.example",
		"probe-170", "xprobe-17.local", "probe-17.box", "localhost.evil.example", "0x7f.1", "127.1"} {
		if h.allowed(host) {
			t.Errorf("Host %q allowed", host)
		}
	}
}

// TestHostCheckConcurrent: requests check Host while the search domains
// are read again (run with -race: the refresh used to rewrite the slice
// the others were reading).
func TestHostCheckConcurrent(t *testing.T) {
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(resolv, []byte("search fritz.box home.arpa\n"), 0o644)
	h := newHostCheck(Hosts{Names: []string{"probe-17"}, ResolvConf: resolv})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2000 {
			h.mu.Lock()
			h.read = time.Time{} // the next look reads the file again
			h.mu.Unlock()
			h.searchDomains()
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		if !h.allowed("probe-17.home.arpa") {
			t.Fatal("probe-17.home.arpa refused while the search domains were read again")
		}
	}
}

func TestOwnNames(t *testing.T) {
	f := filepath.Join(t.TempDir(), "hostname")
	os.WriteFile(f, []byte("presscap\n"), 0o644)
	got := ownNames("Probe-17.", f)
	h, _ := os.Hostname()
	for _, want := range []string{"probe-17", "presscap", strings.ToLower(h)} {
		if !slices.Contains(got, want) {
			t.Errorf("ownNames = %q, lacks %q", got, want)
		}
	}
}

// startServer runs s on a free loopback port and returns its address.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s.Listen = []string{addr}
	if s.Logf == nil {
		s.Logf = t.Logf
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testtool.WaitFor(t, "the status server", 20*time.Second, func() bool { return len(s.Addrs()) == 1 })
	return addr
}

// TestServerRefusesRebinding: a web page whose name was pointed at the
// probe (DNS rebinding) sends its own name as Host, and is refused before
// the trigger sees it; the probe's own names and addresses are served.
func TestServerRefusesRebinding(t *testing.T) {
	src := &fakeSource{}
	token := "0123456789abcdef0123"
	addr := startServer(t, &Server{Handler: Handler(src, Auth{Token: token}), Hosts: Hosts{Names: []string{"probe-test"}}})
	_, port, _ := net.SplitHostPort(addr)
	post := func(host string) int {
		req, _ := http.NewRequest("POST", "http://"+addr+"/trigger", nil)
		req.Host = host
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post("attacker.example:" + port); got != http.StatusMisdirectedRequest {
		t.Errorf("rebound Host: status %d, want 421", got)
	}
	if n := src.triggers.Load(); n != 0 {
		t.Errorf("a rebound request pressed the button (%d)", n)
	}
	for _, host := range []string{addr, "probe-test:" + port, "probe-test.local:" + port} {
		if got := post(host); got != http.StatusOK {
			t.Errorf("Host %q: status %d, want 200", host, got)
		}
	}
}

// TestServerHeaderLimits: headers beyond a few KiB are refused with 431
// after reading at most maxHeaderBytes+4 KiB, and a client that does not
// finish its headers is cut off.
func TestServerHeaderLimits(t *testing.T) {
	addr := startServer(t, &Server{Handler: Handler(&fakeSource{}, Auth{}), HeaderTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		fmt.Fprintf(c, "GET /status.json HTTP/1.1\r\nHost: %s\r\nX-Big: %s\r\n\r\n", addr, strings.Repeat("a", 1<<20))
	}()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("1 MB of headers: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("1 MB of headers: status %d, want 431", resp.StatusCode)
	}

	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "GET / HTTP/1.1\r\nHost: %s\r\n", addr)
	slow.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.ReadAll(slow); err != nil {
		t.Errorf("a client that never ends its headers is not cut off: %v", err)
	}
}

// TestServerHalfClosesAfter431: a client that sent its too-large headers
// whole and then reads gets the 431 and a clean end (the server's FIN),
// not a reset: the limiter's connection passes CloseWrite on, so the
// server half-closes before it closes with the rest of the headers unread.
func TestServerHalfClosesAfter431(t *testing.T) {
	addr := startServer(t, &Server{Handler: Handler(&fakeSource{}, Auth{})})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// 64 KiB fit in loopback's socket buffers: the write completes.
	if _, err := fmt.Fprintf(c, "GET /status.json HTTP/1.1\r\nHost: %s\r\nX-Big: %s\r\n\r\n", addr, strings.Repeat("a", 64<<10)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := io.ReadAll(c)
	if !strings.HasPrefix(string(b), "HTTP/1.1 431 ") || err != nil {
		t.Errorf("read %q, %v; want the 431 and a clean end", b, err)
	}
}

// fakeConn is a connection from a given address.
type fakeConn struct {
	net.Conn
	remote net.Addr
	closed bool
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c *fakeConn) Close() error         { c.closed = true; return nil }

func from(addr string) *fakeConn {
	return &fakeConn{remote: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr))}
}

func TestConnLimiter(t *testing.T) {
	l := newConnLimiter(Limits{MaxConns: 10, PerSource: 3, Loopback: 2}, t.Logf)
	admit := func(addr string) (admitted, evicted *limitedConn) { return l.admit(from(addr)) }
	// Per source: the fourth from one address is refused.
	var a []*limitedConn
	for i := range 3 {
		c, ev := admit("192.168.1.10:1000")
		if c == nil || ev != nil {
			t.Fatalf("connection %d from one address refused", i+1)
		}
		a = append(a, c)
	}
	if c, _ := admit("192.168.1.10:1001"); c != nil {
		t.Errorf("a 4th connection from one address admitted")
	}
	var v6 []*limitedConn
	for i := range 3 {
		c, _ := admit(fmt.Sprintf("[2001:db8::1]:%d", 80+i))
		if c == nil {
			t.Fatalf("connection %d from one IPv6 address refused", i+1)
		}
		v6 = append(v6, c)
	}
	if c, _ := admit("[2001:db8::1]:90"); c != nil {
		t.Errorf("a 4th connection from one IPv6 address admitted")
	}
	// The LAN's 8 slots: two more fill them.
	b1, _ := admit("192.168.1.11:1")
	b2, _ := admit("192.168.1.11:2")
	if b1 == nil || b2 == nil {
		t.Fatal("LAN slots short")
	}
	// Loopback still has its 2.
	lo1, _ := admit("127.0.0.1:5")
	lo2, _ := admit("[::1]:5")
	if lo1 == nil || lo2 == nil {
		t.Fatal("loopback refused while the LAN holds its slots")
	}
	if c, _ := admit("127.0.0.1:6"); c != nil {
		t.Errorf("loopback beyond MaxConns admitted")
	}
	// A newcomer evicts the oldest idle connection of the biggest holder;
	// connections inside a request are never evicted.
	l.trackState(a[0], http.StateActive)
	l.trackState(a[1], http.StateIdle)
	n12, ev := admit("192.168.1.12:1")
	if n12 == nil || ev != a[1] {
		t.Fatalf("newcomer: admitted %v, evicted %v; want a[1] evicted", n12 != nil, ev)
	}
	if lo, lan := l.connections(); lo != 2 || lan != 8 {
		t.Errorf("connections %d loopback, %d LAN; want 2, 8", lo, lan)
	}
	// With every LAN connection inside a request, a newcomer is refused.
	for _, x := range append(v6, a[2], b1, b2, n12) {
		l.trackState(x, http.StateActive)
	}
	if c, _ := admit("192.168.1.13:1"); c != nil {
		t.Errorf("admitted with every LAN connection inside a request")
	}
	// A newcomer evicts only from a source holding more than its own.
	l.trackState(n12, http.StateIdle)
	if c, ev := admit("192.168.1.12:2"); c != nil || ev != nil {
		t.Errorf("a source evicted its own connection (%v) or one of a source holding no more", ev)
	}
	// Closing frees the slot, once.
	b1.Close()
	b1.Close()
	if _, lan := l.connections(); lan != 7 {
		t.Errorf("%d LAN connections after a close, want 7", lan)
	}
	// The evicted connection's own close later changes nothing.
	a[1].Close()
	if _, lan := l.connections(); lan != 7 {
		t.Errorf("%d LAN connections after the evicted one closed, want 7", lan)
	}
}

// TestConnLimiterIPv6Neighbours: the hosts of a home LAN share one /64
// (every link-local client fe80::/64): one of them holding all it may, or
// many addresses of the /64 holding all the LAN's slots, does not keep
// another out. With the /64 counted as one source, fe80::2 was refused.
func TestConnLimiterIPv6Neighbours(t *testing.T) {
	l := newConnLimiter(Limits{MaxConns: 10, PerSource: 3, Loopback: 2}, t.Logf)
	admit := func(addr string) (admitted, evicted *limitedConn) { return l.admit(from(addr)) }
	for i := range 3 {
		if c, _ := admit(fmt.Sprintf("[fe80::1]:%d", 1000+i)); c == nil {
			t.Fatalf("connection %d from fe80::1 refused", i+1)
		}
	}
	if c, _ := admit("[fe80::1]:2000"); c != nil {
		t.Error("a 4th connection from fe80::1 admitted")
	}
	if c, _ := admit("[fe80::2]:1000"); c == nil {
		t.Error("fe80::2 refused while fe80::1 holds its connections")
	}
	// The attacker takes the LAN's other slots from more addresses of
	// the /64, and of another /64; a newcomer evicts from the /64 holding
	// the most.
	for i := range 3 {
		if c, _ := admit(fmt.Sprintf("[fe80::%x]:1000", 0x10+i)); c == nil {
			t.Fatalf("fe80::%x refused", 0x10+i)
		}
	}
	other, _ := admit("[2001:db8::1]:1")
	if _, lan := l.connections(); lan != 8 || other == nil {
		t.Fatalf("%d LAN connections, want the 8 slots full", lan)
	}
	c, ev := admit("[fe80::3]:1000")
	if c == nil || ev == nil || ev.group != netip.MustParsePrefix("fe80::/64") {
		t.Errorf("newcomer with the LAN full: admitted %v, evicted %v; want one of fe80::/64 evicted", c != nil, ev)
	}
}

// TestConnLimiterTotal: loopback may use LAN slots that are free, and
// the LAN then gets no more than what leaves the total within MaxConns.
func TestConnLimiterTotal(t *testing.T) {
	l := newConnLimiter(Limits{MaxConns: 4, PerSource: 3, Loopback: 1}, t.Logf)
	for i := range 3 {
		if c, _ := l.admit(from(fmt.Sprintf("127.0.0.1:%d", 1000+i))); c == nil {
			t.Fatalf("loopback connection %d refused", i+1)
		}
	}
	l.admit(from("192.168.1.10:1"))
	l.admit(from("192.168.1.11:1"))
	l.admit(from("192.168.1.12:1"))
	if lo, lan := l.connections(); lo+lan > 4 {
		t.Errorf("%d loopback + %d LAN connections, over MaxConns 4", lo, lan)
	}
}

// TestPrivateSkipsCaptureLinkLocal: "private" listens on a link-local
// address, but not on one of a capture interface.
func TestPrivateSkipsCaptureLinkLocal(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root and network namespaces")
	}
	p := netnstest.NewPair(t)
	var x, y int
	fmt.Sscanf(netnstest.RandomSuffix(4), "%02x%02x", &x, &y)
	ll := fmt.Sprintf("169.254.%d.%d", 1+x%250, 1+y%250)
	netnstest.Run(t, "ip", "addr", "add", ll+"/32", "dev", p.Host)
	want := net.JoinHostPort(ll, "8080")
	all, err := expand([]string{"private:8080"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(all, want) {
		t.Fatalf("expand without capture links = %q, lacks %s", all, want)
	}
	got, err := expand([]string{"private:8080"}, []string{p.Host})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(got, want) {
		t.Errorf("expand listens on %s, the link-local address of capture link %s", want, p.Host)
	}
	if !slices.Contains(got, "127.0.0.1:8080") {
		t.Errorf("expand = %q, lacks loopback", got)
	}
}

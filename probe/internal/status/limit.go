package status

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Limits bound what clients on the LAN can hold of the status server, so
// that a flood of connections costs neither file descriptors the capture
// needs nor the slots that `probe trigger` on the device uses.
type Limits struct {
	// MaxConns is the number of connections open at once, from all
	// sources (default 64).
	MaxConns int
	// PerSource is the number one address may hold (default 8). An IPv6
	// address counts alone: the hosts of a home LAN share its /64 (and
	// every link-local client fe80::/64), so one of them must not cap
	// the rest.
	PerSource int
	// Loopback is how many of MaxConns only loopback clients may take
	// (default 8).
	Loopback int
}

// DefaultLimits are the limits a zero Limits means.
var DefaultLimits = Limits{MaxConns: 64, PerSource: 8, Loopback: 8}

func (l Limits) withDefaults() Limits {
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultLimits.MaxConns
	}
	if l.PerSource <= 0 {
		l.PerSource = DefaultLimits.PerSource
	}
	if l.Loopback <= 0 {
		l.Loopback = DefaultLimits.Loopback
	}
	if l.Loopback >= l.MaxConns {
		l.Loopback = l.MaxConns - 1
	}
	return l
}

// connLimiter admits the connections of all of a server's listeners
// within Limits. A LAN connection that finds the LAN's slots full takes
// the slot of the oldest connection not in a request (new or idle) of an
// address holding more than the newcomer's, preferring the IPv6 /64 (or
// IPv4 address) that holds the most: a flood from a few addresses, or
// from many of one /64, cannot keep a real user out.
type connLimiter struct {
	lim  Limits
	logf func(string, ...any)

	mu      sync.Mutex // also guards each limitedConn's state
	conns   map[*limitedConn]struct{}
	bySrc   map[netip.Addr]int   // per address: admission
	byGroup map[netip.Prefix]int // per /64: only to rank eviction victims
	lan     int
	loop    int
	seq     uint64
	refused int // since the last log line
	lastLog time.Time
}

func newConnLimiter(lim Limits, logf func(string, ...any)) *connLimiter {
	return &connLimiter{lim: lim.withDefaults(), logf: logf, conns: map[*limitedConn]struct{}{},
		bySrc: map[netip.Addr]int{}, byGroup: map[netip.Prefix]int{}}
}

// limitedConn is an admitted connection; closing it frees its slot.
type limitedConn struct {
	net.Conn
	l        *connLimiter
	src      netip.Addr
	group    netip.Prefix
	loopback bool
	seq      uint64         // admission order: lower is older
	state    http.ConnState // under l.mu
	released atomic.Bool
}

// CloseWrite lets the http.Server half-close after an error response
// (431, 400) and so deliver it before the reset that closing with the
// rest of the request unread brings.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *limitedConn) Close() error {
	if c.released.CompareAndSwap(false, true) {
		c.l.mu.Lock()
		c.l.remove(c)
		c.l.mu.Unlock()
	}
	return c.Conn.Close()
}

// source is the address a connection counts against, and its group for
// ranking evictions: the IPv6 /64, where one host may use many addresses,
// or the IPv4 address itself.
func source(a net.Addr) (ip netip.Addr, group netip.Prefix, loopback bool) {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, netip.Prefix{}, false
	}
	ip = ap.Addr().Unmap().WithZone("")
	if ip.Is6() {
		group, _ = ip.Prefix(64)
	} else {
		group = netip.PrefixFrom(ip, ip.BitLen())
	}
	return ip, group, ip.IsLoopback()
}

// admit decides about a freshly accepted connection. It returns the
// connection to serve, or nil when it refused it; a connection it evicted
// to make room is returned to be closed outside the lock.
func (l *connLimiter) admit(c net.Conn) (admittedConn *limitedConn, evicted *limitedConn) {
	src, group, loopback := source(c.RemoteAddr())
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case loopback:
		if l.loop+l.lan >= l.lim.MaxConns {
			l.refuse()
			return nil, nil
		}
	case l.bySrc[src] >= l.lim.PerSource:
		l.refuse()
		return nil, nil
	// Loopback may have taken more than its reserve: the total stays
	// within MaxConns all the same.
	case l.lan >= l.lim.MaxConns-l.lim.Loopback || l.lan+l.loop >= l.lim.MaxConns:
		evicted = l.victim(l.bySrc[src])
		if evicted == nil {
			l.refuse()
			return nil, nil
		}
		evicted.released.Store(true)
		l.remove(evicted)
	}
	l.seq++
	lc := &limitedConn{Conn: c, l: l, src: src, group: group, loopback: loopback, seq: l.seq, state: http.StateNew}
	l.conns[lc] = struct{}{}
	if loopback {
		l.loop++
	} else {
		l.lan++
		l.bySrc[src]++
		l.byGroup[group]++
	}
	return lc, evicted
}

// victim picks the LAN connection to evict for a newcomer whose address
// holds `have` connections: one outside a request of an address holding
// more than have; of those, one of the /64 holding the most, then of the
// address holding the most, then the oldest. l.mu is held, so no
// connection's state changes meanwhile.
func (l *connLimiter) victim(have int) *limitedConn {
	var best *limitedConn
	for c := range l.conns {
		if c.loopback || c.released.Load() {
			continue
		}
		if c.state != http.StateNew && c.state != http.StateIdle {
			continue
		}
		n := l.bySrc[c.src]
		if n <= have {
			continue
		}
		if best == nil {
			best = c
			continue
		}
		g, bg := l.byGroup[c.group], l.byGroup[best.group]
		bn := l.bySrc[best.src]
		if g > bg || (g == bg && (n > bn || (n == bn && c.seq < best.seq))) {
			best = c
		}
	}
	return best
}

// remove frees c's slot; l.mu is held.
func (l *connLimiter) remove(c *limitedConn) {
	if _, ok := l.conns[c]; !ok {
		return
	}
	delete(l.conns, c)
	if c.loopback {
		l.loop--
		return
	}
	l.lan--
	if l.bySrc[c.src]--; l.bySrc[c.src] <= 0 {
		delete(l.bySrc, c.src)
	}
	if l.byGroup[c.group]--; l.byGroup[c.group] <= 0 {
		delete(l.byGroup, c.group)
	}
}

// refuse counts a refused connection and logs the count at most once a
// minute; l.mu is held.
func (l *connLimiter) refuse() {
	l.refused++
	if now := time.Now(); now.Sub(l.lastLog) >= time.Minute {
		l.logf("status: refused %d connections over the limits (%d in all, %d per address, %d kept for loopback)",
			l.refused, l.lim.MaxConns, l.lim.PerSource, l.lim.Loopback)
		l.refused, l.lastLog = 0, now
	}
}

// trackState is the http.Server's ConnState hook: it tells which
// connections are inside a request and so not to be evicted. It takes
// l.mu, so that victim's choice and a connection's change of state come
// one after the other.
func (l *connLimiter) trackState(c net.Conn, s http.ConnState) {
	if lc, ok := c.(*limitedConn); ok {
		l.mu.Lock()
		lc.state = s
		l.mu.Unlock()
	}
}

// connections reports the connections open from loopback and from the LAN.
func (l *connLimiter) connections() (loopback, lan int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.loop, l.lan
}

// busy is what a refused client reads, if it reads before the reset.
var busy = func() []byte {
	body := "too many connections to the probe's status page, try again later\n"
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}()

// limitedListener admits the connections it accepts through a connLimiter
// and closes those refused at once, so they hold no descriptor.
type limitedListener struct {
	net.Listener
	l *connLimiter
}

func (ln limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc, evicted := ln.l.admit(c)
		if evicted != nil {
			evicted.Conn.Close()
		}
		if lc == nil {
			// A fresh socket's send buffer takes this without blocking.
			c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
			c.Write(busy)
			c.Close()
			continue
		}
		return lc, nil
	}
}

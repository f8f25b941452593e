package status

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Hosts decides which Host headers the status server answers: IP
// literals, "localhost", and the probe's own names, alone or followed by
// ".local" or a search domain of the resolver configuration, each with or
// without a port. Anything else is refused: a web page the customer visits
// that points its own name at the probe's address (DNS rebinding) still
// sends its own name.
type Hosts struct {
	// Names are the probe's own names (OwnNames).
	Names []string
	// ResolvConf is where the search domains are read, again at most every
	// 10 s since DHCP writes it late (default /etc/resolv.conf).
	ResolvConf string
}

// OwnNames is the names the probe answers to: the configured hostname, the
// system's /etc/hostname and the kernel's hostname, without duplicates.
// The fleet name (issue 13) joins them where the service builds its Hosts.
func OwnNames(configured string) []string {
	return ownNames(configured, "/etc/hostname")
}

func ownNames(configured, hostnameFile string) []string {
	var out []string
	add := func(n string) {
		n = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(n), "."))
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	add(configured)
	if b, err := os.ReadFile(hostnameFile); err == nil {
		add(string(b))
	}
	if h, err := os.Hostname(); err == nil {
		add(h)
	}
	return out
}

// hostCheck is Hosts at work, with the search domains cached.
type hostCheck struct {
	Hosts
	mu      sync.Mutex
	domains []string
	read    time.Time
}

func newHostCheck(h Hosts) *hostCheck {
	if h.ResolvConf == "" {
		h.ResolvConf = "/etc/resolv.conf"
	}
	names := make([]string, len(h.Names))
	for i, n := range h.Names {
		names[i] = strings.ToLower(strings.TrimSuffix(n, "."))
	}
	h.Names = names
	return &hostCheck{Hosts: h}
}

// searchDomains returns the "search" and "domain" entries of ResolvConf.
func (h *hostCheck) searchDomains() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now := time.Now(); now.Sub(h.read) >= 10*time.Second {
		h.read = now
		// A new slice: callers still read the one returned before,
		// outside the lock.
		var ds []string
		b, _ := os.ReadFile(h.ResolvConf)
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) > 1 && (f[0] == "search" || f[0] == "domain") {
				for _, d := range f[1:] {
					ds = append(ds, strings.ToLower(strings.Trim(d, ".")))
				}
			}
		}
		h.domains = ds
	}
	return h.domains
}

// allowed reports whether a request's Host names this probe.
func (h *hostCheck) allowed(host string) bool {
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" {
		return true
	}
	for _, n := range h.Names {
		if host == n {
			return true
		}
		dom, ok := strings.CutPrefix(host, n+".")
		if !ok {
			continue
		}
		if dom == "local" || slices.Contains(h.searchDomains(), dom) {
			return true
		}
	}
	return false
}

// wrap refuses requests whose Host is not this probe's before next sees
// them.
func (h *hostCheck) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.allowed(r.Host) {
			http.Error(w, fmt.Sprintf("Host %q is not this probe: use its IP address or its own name", r.Host), http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

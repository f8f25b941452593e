package netnstest

import (
	"bufio"
	"io"
	"slices"
	"testing"
	"time"
)

// Lines follows a child process's output line by line.
type Lines chan string

// Follow reads r's lines into Lines until r ends.
func Follow(r io.Reader) Lines {
	l := make(Lines, 100)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l <- sc.Text()
		}
		close(l)
	}()
	return l
}

// Expect waits up to 60 s for lines equal to each of want, in any order,
// skipping others; it fails the test with what it saw otherwise.
func (l Lines) Expect(t testing.TB, want ...string) {
	t.Helper()
	timeout := time.After(60 * time.Second)
	var seen []string
	for len(want) > 0 {
		select {
		case s, ok := <-l:
			if !ok {
				t.Fatalf("the process ended before saying %q; it said %q", want, seen)
			}
			if i := slices.Index(want, s); i >= 0 {
				want = slices.Delete(want, i, i+1)
			}
			seen = append(seen, s)
		case <-timeout:
			t.Fatalf("no %q after 60s; the process said %q", want, seen)
		}
	}
}

// InlineTopology makes the namespaces of an inline probe: the probe's,
// with ports eth0 and eth1, eth0 cabled to a router's namespace (its end
// "lan") and eth1 to a phone's (its end "eth0"). The outer ends are up
// with IPv6 off; the probe's ports are left as created (down).
func InlineTopology(t testing.TB) (probe, router, phone string) {
	t.Helper()
	Require(t, "ip", "sysctl")
	probe, router, phone = NewNamespace(t), NewNamespace(t), NewNamespace(t)
	Cable(t, router, "lan", probe, "eth0")
	Cable(t, probe, "eth1", phone, "eth0")
	for _, end := range [][2]string{{router, "lan"}, {phone, "eth0"}} {
		disableIPv6(t, end[1], end[0])
		Run(t, "ip", "-n", end[0], "link", "set", end[1], "up")
	}
	return probe, router, phone
}

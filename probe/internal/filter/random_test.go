package filter

import (
	"flag"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
)

var randomExprs = flag.Int("filter.random", 150, "random expressions in TestDifferentialRandom")

// randomExpr builds an expression from the grammar's pieces, nested
// with and/or/not and parentheses, the way users combine them.
func randomExpr(r *rand.Rand, depth int) string {
	if depth > 0 && r.Intn(3) > 0 {
		a, b := randomExpr(r, depth-1), randomExpr(r, depth-1)
		switch r.Intn(6) {
		case 0:
			return "not " + a
		case 1:
			return "(" + a + " or " + b + ")"
		case 2:
			return a + " and " + b
		case 3:
			return a + " or " + b
		case 4:
			return "(" + a + ") and not (" + b + ")"
		}
		return "!(" + a + ") && " + b
	}
	hosts := []string{"10.0.0.1", "10.0.0.2", "192.168.1.1", "1.2.3.4", "2001:db8::1", "fe80::1"}
	nets := []string{"10.0.0.0/8", "192.168.0.0/16", "10", "2001:db8::/32", "172.16.5.0/24"}
	dirs := []string{"", "src ", "dst ", "src or dst ", "src and dst "}
	protos := []string{"tcp", "udp", "sctp", "icmp", "icmp6", "ip", "ip6", "arp", "rarp", "igmp", "pim", "esp"}
	port := func() string { return fmt.Sprint(ports[r.Intn(len(ports))]) }
	switch r.Intn(16) {
	case 0:
		return dirs[r.Intn(len(dirs))] + "host " + hosts[r.Intn(len(hosts))]
	case 1:
		return dirs[r.Intn(len(dirs))] + "net " + nets[r.Intn(len(nets))]
	case 2:
		return []string{"", "tcp ", "udp ", "sctp "}[r.Intn(4)] + dirs[r.Intn(len(dirs))] + "port " + port()
	case 3:
		return []string{"", "tcp ", "udp "}[r.Intn(3)] + dirs[r.Intn(len(dirs))] + "portrange " + port() + "-" + port()
	case 4, 5:
		return protos[r.Intn(len(protos))]
	case 6:
		return []string{"vlan", "vlan 100", "vlan 200", "vlan 0"}[r.Intn(4)]
	case 7:
		return []string{"ether broadcast", "ether multicast", "ip multicast", "ip6 multicast", "ether src 00:11:22:33:44:55", "ether dst host 02:aa:bb:cc:dd:ee"}[r.Intn(6)]
	case 8:
		return []string{"less 60", "greater 100", "len > 70", "len <= 120"}[r.Intn(4)]
	case 9:
		return []string{"ip proto 47", "ip6 proto 58", "proto 17", "ip proto \\tcp", "ether proto 0x88cc", "ether proto \\ipx"}[r.Intn(6)]
	case 10:
		return []string{"tcp[tcpflags] & tcp-syn != 0", "tcp[13] & 0x12 = 0x12", "tcp[0:2] > 1023", "tcp[(tcp[12] >> 4) * 4] = 0x70"}[r.Intn(4)]
	case 11:
		return []string{"udp[0:2] = 53", "udp[2:2] >= 10000", "icmp[icmptype] = icmp-echo", "icmp6[icmp6type] = icmp6-echo"}[r.Intn(4)]
	case 12:
		return []string{"ip[0] & 0xf > 5", "ip[6:2] & 0x3fff != 0", "ip[2:2] > len - 20", "ip6[6] = 44"}[r.Intn(4)]
	case 13:
		return []string{"ether[12:2] = 0x8100", "ether[0] & 1 = 0", "arp[7] = 2", "ether[len - 1] = 0"}[r.Intn(4)]
	case 14:
		return "host " + hosts[r.Intn(4)] + " or " + hosts[r.Intn(4)]
	}
	return "port " + port() + " or " + port()
}

// TestDifferentialRandom is the differential test on random combinations
// (fixed seed, so reproducible; -filter.random=N for more).
func TestDifferentialRandom(t *testing.T) {
	pcap := emptyPcap(t)
	corpus := buildCorpus(10)
	r := rand.New(rand.NewSource(11))
	exprs := make([]string, *randomExprs)
	for i := range exprs {
		exprs[i] = randomExpr(r, 3)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	var mu sync.Mutex
	optOnly := 0
	for _, e := range exprs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			res := diffOne(t, pcap, e, corpus)
			mu.Lock()
			defer mu.Unlock()
			optOnly += res.optimizerOnly
			if len(res.libpcapBugs) > 0 {
				t.Logf("%q: libpcap's optimized program is wrong on complete frames %v", e, res.libpcapBugs)
			}
			if len(res.problems) > 0 {
				t.Errorf("%q:\n  %s", e, strings.Join(res.problems, "\n  "))
			}
		}()
	}
	wg.Wait()
	t.Logf("%d random expressions x %d frames; %d verdicts where libpcap's optimized and unoptimized programs disagree", len(exprs), len(corpus), optOnly)
}

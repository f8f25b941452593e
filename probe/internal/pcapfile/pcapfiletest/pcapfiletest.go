// Package pcapfiletest reads and checks the capture files tests produce:
// every packet as the probe's reader sees it, and Wireshark's tools as the
// oracle that the file is well formed.
package pcapfiletest

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/probe/internal/pcapfile"
)

// Read returns every packet of the pcap or pcapng file at path, up to the
// first that does not read.
func Read(t testing.TB, path string) []pcapfile.Packet {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapfile.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []pcapfile.Packet
	for {
		p, err := r.Next()
		if err != nil {
			break
		}
		p.Data = append([]byte(nil), p.Data...)
		out = append(out, p)
	}
	return out
}

// Validate checks a file with Wireshark's tools (capinfos, tshark) and
// returns tshark's count of its packets.
func Validate(t testing.TB, path string) int {
	t.Helper()
	netnstest.Require(t, "capinfos", "tshark")
	if out, err := exec.Command("capinfos", "-M", path).CombinedOutput(); err != nil {
		t.Fatalf("capinfos %s: %v\n%s", path, err, out)
	}
	out, err := exec.Command("tshark", "-n", "-r", path, "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", path, err)
	}
	return len(strings.Fields(string(out)))
}

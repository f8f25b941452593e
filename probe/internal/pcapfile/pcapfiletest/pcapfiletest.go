// Package pcapfiletest reads and checks the capture files tests produce:
// every packet as the probe's reader sees it, and Wireshark's tools as the
// oracle that the file is well formed.
package pcapfiletest

import (
	"crypto/sha256"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/probe/internal/pcapfile"
	"github.com/presscap/presscap/probe/internal/report/reportcheck"
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
// returns tshark's count of its packets. It also holds the capture
// report's figures on the file against tshark's (reportcheck.File): every
// file a test writes is a test of the report.
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
	CheckReport(t, path)
	return len(strings.Fields(string(out)))
}

// CheckReport holds the capture report's figures on the file at path
// against tshark's (reportcheck.File), once per content in a test binary:
// tests that write the same file again (a resumed cut against one cut at
// once, the same window extracted twice) pay for the comparison once.
//
// Under -short (make check) it compares nothing: tshark's statistics take
// seconds a file, and make test holds every file to them.
func CheckReport(t testing.TB, path string) {
	t.Helper()
	if testing.Short() {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, seen := checked.LoadOrStore(sha256.Sum256(b), true); !seen {
		reportcheck.File(t, path)
	}
}

// checked holds the hashes of the files whose report was compared.
var checked sync.Map

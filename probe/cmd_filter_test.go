package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/internal/filter"
)

func runFilterCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = dispatch(context.Background(), env{stdout: &out, stderr: &errb}, append([]string{"filter"}, args...))
	return out.String(), errb.String(), err
}

// TestFilterCommandMatchesTcpdumpListing compares the listings with
// tcpdump's own for expressions where libpcap's optimized program and ours
// are the same instructions: the three formats must be byte for byte
// equal.
func TestFilterCommandMatchesTcpdumpListing(t *testing.T) {
	tcpdump := testtool.Path(t, "tcpdump", "tcpdump")
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 262144)
	binary.LittleEndian.PutUint32(hdr[20:], 1)
	pcap := filepath.Join(t.TempDir(), "empty.pcap")
	if err := os.WriteFile(pcap, hdr, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, expr := range []string{"ip", "ether multicast", "ether broadcast", "ip6 multicast", "icmp"} {
		for _, flag := range []string{"-d", "-dd", "-ddd"} {
			want, err := exec.Command(tcpdump, flag, "-r", pcap, expr).Output()
			if err != nil {
				t.Fatalf("tcpdump %s %q: %v", flag, expr, err)
			}
			got, _, err := runFilterCmd(t, flag, expr)
			if err != nil {
				t.Fatalf("probe filter %s %q: %v", flag, expr, err)
			}
			if got != string(want) {
				t.Errorf("probe filter %s %q:\n%s\ntcpdump:\n%s", flag, expr, got, want)
			}
		}
	}
}

func TestFilterCommandOptions(t *testing.T) {
	out, _, err := runFilterCmd(t, "-live", "vlan", "100", "and", "udp")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "[vlanp]") || !strings.Contains(out, "[vlan_tci]") {
		t.Errorf("-live program does not use the kernel's VLAN data:\n%s", out)
	}
	off, _, err := runFilterCmd(t, "vlan 100 and udp")
	if err != nil || strings.Contains(off, "vlanp") {
		t.Errorf("offline program uses VLAN ancillary data (%v):\n%s", err, off)
	}
	out, _, err = runFilterCmd(t, "-ddd", "-s", "96", "tcp")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 3 || lines[0] != itoaCmd(len(lines)-1) || !strings.Contains(out, "6 0 0 96\n") {
		t.Errorf("-ddd -s 96 output:\n%s", out)
	}
	if _, _, err := runFilterCmd(t, "-d", "-dd", "ip"); err == nil {
		t.Errorf("-d with -dd accepted")
	}
	if _, _, err := runFilterCmd(t, "-s", "0", "ip"); err == nil {
		t.Errorf("-s 0 accepted")
	}
	_, stderr, err := runFilterCmd(t, "tcp", "port", "70000")
	var se *filter.SyntaxError
	if !errors.As(err, &se) || se.Pos != 9 {
		t.Fatalf("bad port: %v, want a SyntaxError at 9", err)
	}
	if !strings.Contains(stderr, "tcp port 70000\n") || !strings.Contains(stderr, "\n  "+strings.Repeat(" ", 9)+"^") {
		t.Errorf("no caret under the bad value:\n%s", stderr)
	}
	out, _, err = runFilterCmd(t)
	if err != nil || strings.TrimSpace(out) != "(000) ret      #262144" {
		t.Errorf("empty expression: %q, %v", out, err)
	}
}

func itoaCmd(n int) string {
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/presscap/presscap/probe/internal/pcapfile"
	"github.com/presscap/presscap/probe/internal/report/reporttest"
)

func runReportCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = dispatch(context.Background(), env{stdout: &out, stderr: &errb}, append([]string{"report"}, args...))
	return out.String(), errb.String(), err
}

// TestReportJSON: `probe report -json` prints the summary with the fields
// the manifest promises, the same for pcap and pcapng.
func TestReportJSON(t *testing.T) {
	g, tr := reporttest.Mixed(1)
	pcap := g.WritePCAP(t, "mixed.pcap")
	out, _, err := runReportCmd(t, "-json", pcap)
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		RTPStreams []struct {
			SSRC         *uint32  `json:"ssrc"`
			Packets      *uint64  `json:"packets"`
			Lost         *int64   `json:"lost"`
			MaxDeltaMs   *float64 `json:"max_delta_ms"`
			MaxJitterMs  *float64 `json:"max_jitter_ms"`
			MeanJitterMs *float64 `json:"mean_jitter_ms"`
		} `json:"rtp_streams"`
		SIP struct {
			Responses map[string]uint64 `json:"responses"`
			Calls     *int              `json:"calls"`
		} `json:"sip"`
		DNS struct {
			Queries    *uint64           `json:"queries"`
			Unanswered *uint64           `json:"unanswered"`
			Rcodes     map[string]uint64 `json:"rcodes"`
		} `json:"dns"`
		TCP struct {
			Connections     *uint64 `json:"connections"`
			Retransmissions *uint64 `json:"retransmissions"`
			Resets          *uint64 `json:"resets"`
		} `json:"tcp"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if len(s.RTPStreams) != len(tr.RTP) {
		t.Fatalf("%d RTP streams, want %d", len(s.RTPStreams), len(tr.RTP))
	}
	for _, r := range s.RTPStreams {
		if r.SSRC == nil || r.Packets == nil || r.Lost == nil || r.MaxDeltaMs == nil || r.MaxJitterMs == nil || r.MeanJitterMs == nil {
			t.Errorf("RTP stream lacks a field: %s", out)
		}
	}
	if s.SIP.Responses["486"] != 1 || s.SIP.Calls == nil || *s.SIP.Calls != tr.Calls ||
		s.DNS.Queries == nil || *s.DNS.Queries != tr.DNSQueries || s.DNS.Unanswered == nil || s.DNS.Rcodes["ServFail"] == 0 ||
		s.TCP.Connections == nil || s.TCP.Retransmissions == nil || *s.TCP.Retransmissions != tr.TCPRetrans || s.TCP.Resets == nil {
		t.Errorf("summary fields: %+v", s)
	}
	var raw map[string]any
	json.Unmarshal([]byte(out), &raw)
	for _, f := range raw["findings"].([]any) {
		m := f.(map[string]any)
		for _, k := range []string{"text", "first", "last", "display_filter"} {
			if _, ok := m[k]; !ok {
				t.Errorf("finding without %q: %v", k, m)
			}
		}
	}

	// The same packets as pcapng.
	ng := filepath.Join(t.TempDir(), "mixed.pcapng")
	f, err := os.Create(ng)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcapfile.NewWriter(f, "pcapng", []pcapfile.Interface{{Name: "eth0", LinkType: 1}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range g.Pkts {
		w.WritePacket(0, p.TS, uint32(len(p.Data)), p.Data)
	}
	w.Flush()
	f.Close()
	outNG, _, err := runReportCmd(t, "-json", ng)
	if err != nil {
		t.Fatal(err)
	}
	// Only pcapng names its interfaces.
	if strings.Replace(outNG, `"name": "eth0"`, `"name": ""`, 1) != out {
		t.Errorf("pcapng and pcap of the same packets differ:\n%s\n%s", outNG, out)
	}

	// Two bridge ports, their sides in the interfaces' descriptions (as
	// the probe's pcapng files have them): the text names each link.
	two := filepath.Join(t.TempDir(), "sides.pcapng")
	f, err = os.Create(two)
	if err != nil {
		t.Fatal(err)
	}
	w, err = pcapfile.NewWriter(f, "pcapng", []pcapfile.Interface{{Name: "eth0", LinkType: 1, Description: "router"}, {Name: "eth1", LinkType: 1, Description: "device"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range g.Pkts {
		w.WritePacket(i%2, p.TS, uint32(len(p.Data)), p.Data)
	}
	w.Flush()
	f.Close()
	text, _, err := runReportCmd(t, two)
	if err != nil {
		t.Fatal(err)
	}
	n0, n1 := (len(g.Pkts)+1)/2, len(g.Pkts)/2
	for _, want := range []string{fmt.Sprintf("link eth0 (router side): %d packets", n0), fmt.Sprintf("link eth1 (device side): %d packets", n1)} {
		if !strings.Contains(text, want) {
			t.Errorf("text output lacks %q:\n%s", want, text)
		}
	}
}

// TestReportHTMLAndText: -o writes a self-contained page; without -o or
// -json the findings are printed.
func TestReportHTMLAndText(t *testing.T) {
	g, _ := reporttest.Mixed(1)
	pcap := g.WritePCAP(t, "mixed.pcap")
	html := filepath.Join(t.TempDir(), "r.html")
	if _, _, err := runReportCmd(t, "-o", html, "-press", "2026-01-02T10:00:05Z", pcap); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, want := range []string{`<svg id="rate"`, `id="press"`, `id="findings"`, "sip.Call-ID == &#34;call-busy@192.168.1.10&#34;", "failed with 486"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "src=", "<link", "url("} {
		if strings.Contains(page, bad) {
			t.Errorf("page is not self-contained: has %q", bad)
		}
	}
	out, _, err := runReportCmd(t, pcap)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "failed with 486") || !strings.Contains(out, "tcp.port == 50001") {
		t.Errorf("text output:\n%s", out)
	}
}

// TestReportDamagedFile: a file cut in the middle of a packet still gives
// the report of what came before, and the error says where.
func TestReportDamagedFile(t *testing.T) {
	g, _ := reporttest.Mixed(1)
	pcap := g.WritePCAP(t, "mixed.pcap")
	b, _ := os.ReadFile(pcap)
	cut := filepath.Join(t.TempDir(), "cut.pcap")
	os.WriteFile(cut, b[:len(b)/2+7], 0o644)
	out, _, err := runReportCmd(t, "-json", cut)
	if err == nil || !strings.Contains(err.Error(), "packet") {
		t.Errorf("error %v, want one naming the packet", err)
	}
	var s struct{ Packets uint64 }
	if json.Unmarshal([]byte(out), &s); s.Packets == 0 {
		t.Errorf("no report of the packets before the damage: %q", out)
	}
	if _, _, err := runReportCmd(t, filepath.Join(t.TempDir(), "missing.pcap")); err == nil {
		t.Error("missing file: no error")
	}
	var ue usageError
	if _, _, err := runReportCmd(t); !errors.As(err, &ue) {
		t.Errorf("no file: %v, want a usage error", err)
	}
}

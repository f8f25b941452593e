package report_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/probe/internal/report"
	"github.com/presscap/presscap/probe/internal/report/reporttest"
)

// TestLinkDownGaps: link-down times clipped to the window: one still down
// at the window's end (no end given), one over the window's start, and a
// link down the whole time that has no packet (its interface is in no
// file) still listed; the rate graph shades them.
func TestLinkDownGaps(t *testing.T) {
	g, _ := reporttest.Mixed(1)
	g.Sort()
	a := report.New([]report.Link{{Name: "eth0", LinkType: 1, Side: "router"}}, report.Options{Start: g.T0, End: g.T0 + int64(20*time.Second)})
	for _, p := range g.Pkts {
		a.Add(0, p.TS, uint32(len(p.Data)), p.Data)
	}
	a.LinkDown("eth0", g.T0-int64(5*time.Second), g.T0+int64(1500*time.Millisecond))
	a.LinkDown("eth0", g.T0+int64(18*time.Second), 0)
	a.LinkDown("eth1", g.T0-int64(time.Minute), 0)
	s := a.Summary()
	if len(s.Links) != 2 || s.Links[1].Name != "eth1" || s.Links[1].Packets != 0 {
		t.Fatalf("links %+v, want eth0 and eth1 (no packets)", s.Links)
	}
	got := [][]string{}
	for _, l := range s.Links {
		var d []string
		for _, g := range l.Down {
			d = append(d, g.Duration)
		}
		got = append(got, d)
	}
	if strings.Join(got[0], ",") != "1.5s,2s" || strings.Join(got[1], ",") != "20s" {
		t.Errorf("down times %v, want eth0 [1.5s 2s] eth1 [20s]", got)
	}
	n := 0
	for _, f := range s.Findings {
		if strings.HasPrefix(f.Text, "Link eth") && f.Severity == "error" {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d link-down findings, want 3: %+v", n, s.Findings)
	}
	var page bytes.Buffer
	if err := report.WriteHTML(&page, s, "gaps"); err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(page.String(), `class="down"`); c != 3+3 {
		t.Errorf("%d shaded link-down times on the page, want 3 in the whole graph and 3 in the links'", c)
	}
}

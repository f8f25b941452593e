package report_test

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/internal/report"
	"github.com/presscap/presscap/probe/internal/report/reportcheck"
	"github.com/presscap/presscap/probe/internal/report/reporttest"
)

// TestReportInChromium opens the page from a file in headless Chromium
// (offline, as the engineer would): no console error, the DOM holds every
// finding and a bar per busy second, and the screenshot shows the findings
// box with text in it above the rate graph, whose bars and press line are
// drawn.
func TestReportInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("headless Chromium: not under -short")
	}
	g, _ := reporttest.Mixed(1)
	path := g.WritePCAP(t, "mixed.pcap")
	s := reportcheck.Read(t, path, report.Options{Press: g.T0 + int64(5*time.Second)})
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := report.WriteHTML(f, s, "Capture report: mixed.pcap"); err != nil {
		t.Fatal(err)
	}
	f.Close()

	browser := testtool.NewChromium(t, 1000, 1400)
	browse := func(args ...string) ([]byte, string) { return browser.Browse("file://"+page, args...) }
	dom, logs := browse("--dump-dom")
	if strings.Contains(logs, "CONSOLE") || strings.Contains(logs, "Failed to load") {
		t.Errorf("the page logged errors:\n%s", logs)
	}
	if n := strings.Count(string(dom), `<tr class="finding">`); n != len(s.Findings) || n < 5 {
		t.Errorf("%d finding rows in the DOM, summary has %d", n, len(s.Findings))
	}
	busy := 0
	for _, v := range s.RatePackets {
		if v > 0 {
			busy++
		}
	}
	if n := len(regexp.MustCompile(`<rect class="bar"`).FindAll(dom, -1)); n != len(s.RatePackets) || busy < 10 {
		t.Errorf("%d bars in the DOM, want %d (%d busy seconds)", n, len(s.RatePackets), busy)
	}

	shot := filepath.Join(dir, "page.png")
	browse("--screenshot=" + shot)
	sf, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	img, err := png.Decode(sf)
	if err != nil {
		t.Fatal(err)
	}
	box := colourBox(img, 0xff, 0xf5, 0xf5) // the findings box's background
	bars := colourBox(img, 0x2b, 0x6c, 0xb0)
	press := colourBox(img, 0xe5, 0x3e, 0x3e)
	ink := 0
	for y := box.r.Min.Y; y < box.r.Max.Y; y++ {
		for x := box.r.Min.X; x < box.r.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if r>>8 < 0x90 && g>>8 < 0x90 && b>>8 < 0x90 || r>>8 > 0xa0 && g>>8 < 0x60 {
				ink++ // dark text, or the red of an error's text
			}
		}
	}
	t.Logf("screenshot %v: findings box %v with %d ink pixels, bars %v (%d px), press %v (%d px)", img.Bounds(), box.r, ink, bars.r, bars.n, press.r, press.n)
	if box.n < 20000 || ink < 200*len(s.Findings) {
		t.Errorf("findings box: %d background pixels, %d text pixels (want text for %d findings)", box.n, ink, len(s.Findings))
	}
	if bars.n < 2000 || press.n < 100 || press.r.Dy() < 80 {
		t.Errorf("rate graph: %d bar pixels, press line %v (%d pixels)", bars.n, press.r, press.n)
	}
	if !(box.r.Max.Y <= bars.r.Min.Y) {
		t.Errorf("the findings (%v) are not above the graph (%v)", box.r, bars.r)
	}
	if p := os.Getenv("PRESSCAP_KEEP_SCREENSHOT"); p != "" {
		data, _ := os.ReadFile(shot)
		os.WriteFile(p, data, 0o644)
	}
}

type colourArea struct {
	r image.Rectangle
	n int
}

// colourBox counts the pixels of one exact colour and their bounding box.
func colourBox(img image.Image, r8, g8, b8 uint32) colourArea {
	var a colourArea
	bd := img.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if r>>8 == r8 && g>>8 == g8 && b>>8 == b8 {
				p := image.Rect(x, y, x+1, y+1)
				if a.n == 0 {
					a.r = p
				} else {
					a.r = a.r.Union(p)
				}
				a.n++
			}
		}
	}
	return a
}

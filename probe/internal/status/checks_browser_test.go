//go:build !portaudio

package status

import (
	"encoding/json"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/sshdtest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/leds"
	"github.com/presscap/presscap/probe/internal/upload"
)

// TestChecksInChromium runs the four checks through the page's buttons (a
// form post, as the browser sends it) on the fake sound card and LED, a
// real sshd and a press source, then loads the page in headless Chromium:
// the DOM it built holds each check's result, and the screenshot shows the
// result rows (green) with text on them and no failed row (red).
func TestChecksInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("headless Chromium and sshd: not under -short")
	}
	testtool.Path(t, "chromium", "chromium") // before sshd: a missing browser fails first
	srv := sshdtest.Start(t, sshdtest.Options{})
	remote := filepath.Join(srv.Dir, "in")
	os.Mkdir(remote, 0o755)
	state := t.TempDir()
	_, pub, err := upload.LoadOrCreateKey(filepath.Join(state, upload.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	srv.AuthorizeLine(pub)
	cfg := upload.DefaultConfig()
	cfg.Enabled = true
	cfg.Server, cfg.User, cfg.RemoteDir, cfg.HostKey = srv.Addr(), "root", remote, srv.Fingerprint()

	b, _ := soundCard(t)
	defer b.Close()
	_, sys := sysfsLED(t)
	l := leds.NewWithLight(sys)
	defer l.Close()
	l.Set(leds.Recording)
	checks := &Checks{Upload: cfg, StateDir: state, Beeper: b, LEDs: l,
		LEDShow: 20 * time.Millisecond, Pause: 10 * time.Millisecond, Poll: time.Millisecond}
	web := httptest.NewServer(Handler(WithChecks(&pressSource{}, checks), Auth{Token: checkToken}))
	defer web.Close()

	for _, ch := range checkList {
		req, _ := http.NewRequest("POST", web.URL+"/check/"+ch.name, strings.NewReader(""))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", web.URL)
		req.Header.Set("Authorization", "Bearer "+checkToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// The redirect leads back to the page.
		if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" {
			t.Fatalf("button %q: %s at %s", ch.title, resp.Status, resp.Request.URL)
		}
	}
	testtool.WaitFor(t, "every check finished", time.Minute, func() bool {
		resp, err := http.Get(web.URL + "/checks.json")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var runs []CheckRun
		json.NewDecoder(resp.Body).Decode(&runs)
		for _, r := range runs {
			if r.Running || r.Finished.IsZero() {
				return false
			}
		}
		return len(runs) == len(checkList)
	})

	dir := t.TempDir()
	browser := testtool.NewChromium(t, 1000, 3000)
	browse := func(args ...string) []byte {
		out, _ := browser.Browse(web.URL+"/", args...)
		return out
	}
	dom := string(browse("--dump-dom"))
	want := map[string][]string{
		"sounds": {"play ack", "play saved", "play uploaded", "play fault"},
		"leds":   {"show booting", "show recording", "show fault-bad-config", "blinks five times, then pauses: bad configuration"},
		"upload": {"connect to " + srv.Addr(), srv.Fingerprint() + " matches", "find remote_dir", "read back", "delete"},
		"press":  {"window #4 opened", "save window #4", "20231114T221320Z_4_voip.pcap"},
	}
	for _, ch := range checkList {
		m := regexp.MustCompile(`(?s)<div class="check" id="check-` + ch.name + `">(.*?)</div>`).FindStringSubmatch(dom)
		if m == nil {
			t.Errorf("the page has no result of %q:\n%s", ch.title, dom)
			continue
		}
		if !strings.Contains(m[1], ch.title) || !strings.Contains(m[1], `class="ok">passed`) || strings.Contains(m[1], "FAIL") {
			t.Errorf("%q on the page:\n%s", ch.title, m[1])
		}
		for _, w := range want[ch.name] {
			if !strings.Contains(m[1], w) {
				t.Errorf("%q on the page lacks %q:\n%s", ch.title, w, m[1])
			}
		}
	}

	shot := filepath.Join(dir, "page.png")
	browse("--screenshot=" + shot)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	green, red, inked, rows := countResultPixels(img)
	t.Logf("screenshot %v: %d green, %d red, %d text pixels on green, %d green rows", img.Bounds(), green, red, inked, rows)
	steps := 0
	for _, r := range checks.Runs() {
		steps += len(r.Steps)
	}
	if rows < steps || inked < 20*steps || red != 0 {
		t.Errorf("screenshot: %d green result rows (want %d steps), %d text pixels on them, %d red pixels", rows, steps, inked, red)
	}
	if p := os.Getenv("PRESSCAP_KEEP_SCREENSHOT"); p != "" {
		data, _ := os.ReadFile(shot)
		os.WriteFile(p, data, 0o644)
	}
}

// countResultPixels counts the page's ok (green) and failed (red) row
// backgrounds, the dark pixels of text next to green, and the bands of
// pixel rows with green in them (one per result row; rows are apart by
// the table's border).
func countResultPixels(img image.Image) (green, red, inked, rows int) {
	isGreen := func(x, y int) bool {
		r, g, b, _ := img.At(x, y).RGBA()
		return r>>8 == 0xc6 && g>>8 == 0xef && b>>8 == 0xce
	}
	bd := img.Bounds()
	inRow := false
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		rowGreen := 0
		for x := bd.Min.X; x < bd.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			r, g, b = r>>8, g>>8, b>>8
			switch {
			case isGreen(x, y):
				green++
				rowGreen++
			case r == 0xff && g == 0xc7 && b == 0xce:
				red++
			case r < 0x80 && g < 0x80 && b < 0x80:
				for dx := -3; dx <= 3; dx++ {
					if isGreen(x+dx, y) {
						inked++
						break
					}
				}
			}
		}
		if rowGreen > 0 && !inRow {
			rows++
		}
		inRow = rowGreen > 0
	}
	return green, red, inked, rows
}

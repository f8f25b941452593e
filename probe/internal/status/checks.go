package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/presscap/presscap/beeper"
	"github.com/presscap/presscap/leds"
	"github.com/presscap/presscap/probe/internal/upload"
)

// Checks are the installer's checks that the status page offers, because
// the appliance has no shell: test the upload, play each sound, show each
// LED state, test a press. They run on the service's own beeper, LED,
// upload configuration and trigger, the parts a customer's box uses.
type Checks struct {
	Upload   upload.Config // the configuration's upload section
	StateDir string        // where the probe's SSH key lives
	// ID is the probe's (package identity), for the upload test's
	// enrolment; "" without one.
	ID     string
	Beeper *beeper.Beeper
	LEDs   *leds.LEDs // nil: no LED configured
	// LEDShow is how long each LED state is shown; 0 shows whole rounds
	// of its pattern, at least three seconds.
	LEDShow time.Duration
	// Pause separates two sounds and two LED states (0: one second).
	Pause time.Duration
	// Poll is how often the press check looks for its window's save
	// (0: a quarter second).
	Poll time.Duration
	// Timeout bounds one check (0: ten minutes), so a check never outlives
	// the reason it was asked for.
	Timeout time.Duration

	mu   sync.Mutex
	runs map[string]*CheckRun
}

// CheckRun is one check's last run, as the page and GET /checks.json show it.
type CheckRun struct {
	Check    string      `json:"check"`
	Title    string      `json:"title"`
	Running  bool        `json:"running"`
	Started  time.Time   `json:"started,omitzero"`
	Finished time.Time   `json:"finished,omitzero"`
	OK       bool        `json:"ok"`
	Steps    []CheckStep `json:"steps"`
}

// CheckStep is one step of a check and what it found.
type CheckStep struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
}

// checkList is the checks in the order an installer works through them.
var checkList = []struct{ name, title string }{
	{"sounds", "Play each sound"},
	{"leds", "Show each LED state"},
	{"upload", "Test the upload"},
	{"press", "Test press"},
}

// CheckSource is a Source whose status page offers the installer's checks.
type CheckSource interface {
	Source
	Checks() *Checks
}

type withChecks struct {
	Source
	c *Checks
}

func (w withChecks) Checks() *Checks { return w.c }

// WithChecks returns src with the installer's checks c on its page.
func WithChecks(src Source, c *Checks) CheckSource { return withChecks{src, c} }

// snapshotOf is src's snapshot with the checks' last runs.
func snapshotOf(src Source) Snapshot {
	s := src.Snapshot()
	if cs, ok := src.(CheckSource); ok && cs.Checks() != nil {
		s.Checks = cs.Checks().Runs()
	}
	return s
}

// Runs returns every check's last run, in the installer's order.
func (c *Checks) Runs() []CheckRun {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]CheckRun, 0, len(checkList))
	for _, ch := range checkList {
		r := CheckRun{Check: ch.name, Title: ch.title, Steps: []CheckStep{}}
		if p := c.runs[ch.name]; p != nil {
			r = *p
			r.Steps = append([]CheckStep{}, p.Steps...)
		}
		out = append(out, r)
	}
	return out
}

func (c *Checks) run(name string) (CheckRun, bool) {
	for _, r := range c.Runs() {
		if r.Check == name {
			return r, true
		}
	}
	return CheckRun{}, false
}

// Start runs the check name in the background and returns its run as it
// starts; a check already running is left to finish and returned.
func (c *Checks) Start(src Source, name string) (CheckRun, error) {
	var do func(context.Context, Source, func(CheckStep)) error
	switch name {
	case "sounds":
		do = c.sounds
	case "leds":
		do = c.leds
	case "upload":
		do = c.upload
	case "press":
		do = c.press
	default:
		return CheckRun{}, fmt.Errorf("no check %q", name)
	}
	title := ""
	for _, ch := range checkList {
		if ch.name == name {
			title = ch.title
		}
	}
	c.mu.Lock()
	if c.runs == nil {
		c.runs = map[string]*CheckRun{}
	}
	if r := c.runs[name]; r != nil && r.Running {
		c.mu.Unlock()
		run, _ := c.run(name)
		return run, nil
	}
	r := &CheckRun{Check: name, Title: title, Running: true, Started: time.Now(), Steps: []CheckStep{}}
	c.runs[name] = r
	c.mu.Unlock()
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		failed := false
		err := do(ctx, src, func(s CheckStep) {
			c.mu.Lock()
			defer c.mu.Unlock()
			failed = failed || !s.OK
			r.Steps = append(r.Steps, s)
		})
		c.mu.Lock()
		defer c.mu.Unlock()
		if err != nil && !failed {
			r.Steps = append(r.Steps, CheckStep{Name: "finish", Error: err.Error()})
			failed = true
		}
		r.Running, r.OK, r.Finished = false, !failed, time.Now()
	}()
	run, _ := c.run(name)
	return run, nil
}

func step(name, detail string, err error) CheckStep {
	if err != nil {
		return CheckStep{Name: name, Error: err.Error()}
	}
	return CheckStep{Name: name, OK: true, Detail: detail}
}

// wait sleeps d or until ctx ends.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (c *Checks) pause() time.Duration {
	if c.Pause > 0 {
		return c.Pause
	}
	return time.Second
}

// sounds plays every sound on the service's beeper, the way a press, a
// save, an upload and a fault sound.
func (c *Checks) sounds(ctx context.Context, _ Source, report func(CheckStep)) error {
	if c.Beeper == nil {
		report(step("open the speaker", "", errors.New("no beeper in this service")))
		return nil
	}
	for i, s := range beeper.Sounds() {
		if i > 0 {
			if err := wait(ctx, c.pause()); err != nil {
				return err
			}
		}
		report(step("play "+s.String(), "played", c.Beeper.PlayWait(ctx, s)))
	}
	return nil
}

// leds shows every state's pattern once on the service's LED, dark for a
// pause between two, then gives the LED back to the service's state.
func (c *Checks) leds(ctx context.Context, _ Source, report func(CheckStep)) error {
	if c.LEDs == nil {
		report(step("open the LED", "", errors.New("no LED in this service (leds.driver, or the LED was not found at start: see the log)")))
		return nil
	}
	for _, s := range leds.States() {
		if s == leds.Off {
			continue
		}
		p := leds.PatternOf(s)
		// A flash plays one round of a pattern (a steady one for a
		// second); flashing again each round shows it for longer.
		round := p.Cycle()
		if round == 0 {
			round = time.Second
		}
		show := c.LEDShow
		if show <= 0 {
			show = round * ((3*time.Second + round - 1) / round)
		}
		for shown := time.Duration(0); shown < show; shown += round {
			c.LEDs.Flash(s)
			if err := wait(ctx, min(round, show-shown)); err != nil {
				return err
			}
		}
		report(step("show "+s.String(), p.Say, c.LEDs.Err()))
		c.LEDs.Flash(leds.Off)
		if err := wait(ctx, c.pause()); err != nil {
			return err
		}
	}
	return nil
}

// upload is `probe upload -test` on the service's configuration: each of
// upload.SelfTest's steps becomes a step on the page.
func (c *Checks) upload(ctx context.Context, _ Source, report func(CheckStep)) error {
	if !c.Upload.Enabled {
		report(step("check configuration", "", errors.New("upload.enable is false: set it and the server fields first")))
		return nil
	}
	upload.SelfTest(ctx, c.Upload, c.StateDir, c.ID, func(s upload.Step) {
		report(step(s.Name, s.Detail, s.Err))
	})
	return nil
}

// press presses as the presenter would and waits until the window is
// saved, then lists its files.
func (c *Checks) press(ctx context.Context, src Source, report func(CheckStep)) error {
	p, err := src.Trigger("installer", "")
	if err != nil {
		report(step("press", "", err))
		return nil
	}
	if p.Decision == "ignored" {
		report(step("press", "", fmt.Errorf("ignored: window #%d is still open (trigger.repeat ignore); try again when it is saved", p.Window)))
		return nil
	}
	report(step("press", fmt.Sprintf("at %s: window #%d %s", p.Time.UTC().Format("15:04:05.000 UTC"), p.Window, p.Decision), nil))
	poll := c.Poll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	for {
		for _, q := range src.Snapshot().Presses {
			if !q.Time.Equal(p.Time) || q.Window != p.Window || !q.Done {
				continue
			}
			if q.Error != "" {
				report(step("save window #"+fmt.Sprint(p.Window), "", errors.New(q.Error)))
				return nil
			}
			detail := fmt.Sprintf("%d files in %s: %s", len(q.Files), q.Dir, strings.Join(q.Files, ", "))
			if len(q.Files) == 0 {
				report(step("save window #"+fmt.Sprint(p.Window), "", errors.New("saved, but no file was written")))
				return nil
			}
			report(step("save window #"+fmt.Sprint(p.Window), detail, nil))
			return nil
		}
		if err := wait(ctx, poll); err != nil {
			report(step("save window #"+fmt.Sprint(p.Window), "", fmt.Errorf("not saved in time: %w", err)))
			return nil
		}
	}
}

// routes adds the checks' endpoints to mux: POST /check/NAME starts a
// check, behind the same authentication as /trigger; GET /checks.json
// returns every check's last run.
func (c *Checks) routes(mux *http.ServeMux, src Source, auth Auth) {
	mux.HandleFunc("GET /checks.json", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.Runs())
	})
	mux.HandleFunc("POST /check/{name}", func(w http.ResponseWriter, r *http.Request) {
		if ok, why := auth.allowed(r); !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="presscap"`)
			http.Error(w, why, http.StatusUnauthorized)
			return
		}
		run, err := c.Start(src, r.PathValue("name"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			// The page's button: back to the page, which shows the run.
			http.Redirect(w, r, "/#check-"+run.Check, http.StatusSeeOther)
			return
		}
		writeJSON(w, http.StatusAccepted, run)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// The page's section of the checks, a template of page (named "checks"):
// ok steps on green, failed ones on red, so they stand out on a phone.
var _ = template.Must(page.New("checks").Parse(`{{if .}}<h2 id="checks">Installer checks</h2>
<style>tr.ok td{background:#c6efce}tr.fail td{background:#ffc7ce}span.ok{color:#060}span.fail{color:#c00;font-weight:bold}div.check{margin:0.6em 0}</style>
<p>Each button asks for the gokrazy password (user gokrazy) or the status token, as a press by HTTP does.</p>
{{range .}}<div class="check" id="check-{{.Check}}"><form method="post" action="check/{{.Check}}"><button type="submit"{{if .Running}} disabled{{end}}>{{.Title}}</button>
{{if .Running}} <b>running since {{t .Started}}</b>{{else if not .Finished.IsZero}} {{if .OK}}<span class="ok">passed</span>{{else}}<span class="fail">FAILED</span>{{end}} at {{t .Finished}}{{end}}</form>
{{if .Steps}}<table>{{range .Steps}}<tr class="{{if .OK}}ok{{else}}fail{{end}}"><td>{{if .OK}}ok{{else}}FAIL{{end}}</td><td>{{.Name}}</td><td>{{if .OK}}{{.Detail}}{{else}}{{.Error}}{{end}}</td></tr>{{end}}</table>{{end}}
</div>{{if .Running}}<meta http-equiv="refresh" content="2">{{end}}{{end}}{{end}}`))

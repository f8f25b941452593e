package leds

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

type event struct {
	at time.Duration // since the test's start on the bubble's fake clock
	on bool          // as read back from the pin or the brightness file
}

// recorder passes Set to a real Light and reads back what the hardware
// stand-in now shows, with the time since t0.
type recorder struct {
	Light
	read   func() bool
	t0     time.Time
	events chan event
}

func (r *recorder) Set(on bool) error {
	err := r.Light.Set(on)
	r.events <- event{time.Since(r.t0), r.read()}
	return err
}

type rig struct {
	name string
	make func(t *testing.T) (Light, func() bool)
}

var rigs = []rig{
	{"gpio", func(t *testing.T) (Light, func() bool) {
		pin := &gpiotest.Pin{N: "GPIO17", Num: 17}
		return NewGPIO(pin, false), func() bool { return pin.Read() == gpio.High }
	}},
	{"gpio-active-low", func(t *testing.T) (Light, func() bool) {
		pin := &gpiotest.Pin{N: "GPIO27", Num: 27}
		return NewGPIO(pin, true), func() bool { return pin.Read() == gpio.Low }
	}},
	{"sysfs", func(t *testing.T) (Light, func() bool) {
		root := sysfsTree(t, "ACT", "255", "none rc-feedback [mmc0] timer heartbeat")
		s, err := OpenSysfs(root, "", false)
		if err != nil {
			t.Fatal(err)
		}
		return s, func() bool {
			b, err := os.ReadFile(filepath.Join(root, "ACT", "brightness"))
			if err != nil {
				t.Error(err)
			}
			return string(b) == "255"
		}
	}},
}

func sysfsTree(t *testing.T, name, max, trigger string) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, v := range map[string]string{"brightness": "0", "max_brightness": max + "\n", "trigger": trigger + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// newRig starts LEDs on r's light. It runs inside a testing/synctest
// bubble, whose fake clock moves only when every goroutine in it waits: a
// pattern's step ends exactly at its time, and a test waits no real time.
func newRig(t *testing.T, r rig) (*LEDs, *recorder) {
	light, read := r.make(t)
	rec := &recorder{Light: light, read: read, t0: time.Now(), events: make(chan event, 1000)}
	l := NewWithLight(rec)
	t.Cleanup(func() { l.Close() })
	return l, rec
}

func next(t *testing.T, rec *recorder) event {
	t.Helper()
	select {
	case e := <-rec.events:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("the LED did not change")
		return event{}
	}
}

// follow checks that the LED shows steps from offset at, sleeping on the
// bubble's clock to each step's end: a step shorter or longer than its
// time shows up as a wrong time on the next event.
func follow(t *testing.T, rec *recorder, at time.Duration, steps []Step) time.Duration {
	t.Helper()
	for i, s := range steps {
		e := next(t, rec)
		if e.on != s.On || e.at != at {
			t.Fatalf("step %d: LED on=%v at %v, want on=%v at %v", i, e.on, e.at, s.On, at)
		}
		if s.Dur == 0 {
			return at
		}
		time.Sleep(s.Dur)
		at += s.Dur
	}
	return at
}

func TestEveryStatePattern(t *testing.T) {
	for _, r := range rigs {
		for _, s := range States() {
			t.Run(r.name+"/"+s.String(), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					l, rec := newRig(t, r)
					p := PatternOf(s)
					if p.Once {
						// A momentary pattern over a steady Recording.
						l.Set(Recording)
						follow(t, rec, 0, []Step{{true, 0}})
						l.Flash(s)
						end := follow(t, rec, 0, p.Steps)
						follow(t, rec, end, []Step{{true, 0}})
						return
					}
					l.Set(s)
					steps := p.Steps
					if p.Cycle() > 0 {
						steps = append(append([]Step(nil), p.Steps...), p.Steps...) // two rounds
					}
					follow(t, rec, 0, steps)
				})
			})
		}
	}
}

func TestPatternsReadableAndDistinct(t *testing.T) {
	seen := map[string]State{}
	for _, s := range States() {
		p := PatternOf(s)
		if p.Say == "" || len(p.Steps) == 0 {
			t.Errorf("%v: no pattern or description", s)
		}
		for _, st := range p.Steps {
			// Anything shorter than 50 ms is a flicker nobody can count.
			if st.Dur != 0 && st.Dur < 50*time.Millisecond {
				t.Errorf("%v: step of %v", s, st.Dur)
			}
		}
		key := ""
		for _, st := range p.Steps {
			key += st.Dur.String()
			if st.On {
				key += "+"
			}
		}
		if o, dup := seen[key]; dup {
			t.Errorf("%v looks like %v", s, o)
		}
		seen[key] = s
	}
	// A fault blinks its number of times within one round.
	for s, n := range map[State]int{FaultNoDisk: 2, FaultDiskFull: 3, FaultNoLink: 4, FaultBadConfig: 5} {
		on := 0
		for _, st := range PatternOf(s).Steps {
			if st.On {
				on++
			}
		}
		if on != n || !strings.Contains(PatternOf(s).Say, []string{2: "twice", 3: "three", 4: "four", 5: "five"}[n]) {
			t.Errorf("%v blinks %d times, says %q; want %d", s, on, PatternOf(s).Say, n)
		}
	}
}

// TestFlashThenSet: a Set during a flash waits for the flash to end; a
// second Flash restarts it.
func TestFlashThenSet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, rec := newRig(t, rigs[0])
		l.Set(Recording)
		follow(t, rec, 0, []Step{{true, 0}})
		l.Flash(Pressed)
		p := PatternOf(Pressed).Steps
		at := follow(t, rec, 0, p[:4]) // 200 ms into the flash
		l.Set(Saving)
		if l.State() != Saving {
			t.Errorf("State() = %v", l.State())
		}
		at = follow(t, rec, at, p[4:])
		// One round of Saving, and the start of the next.
		at = follow(t, rec, at, append(PatternOf(Saving).Steps, Step{true, 0}))
		l.Flash(Pressed)
		// The flash restarts from its first step at the current time.
		at = follow(t, rec, at, p)
		follow(t, rec, at, PatternOf(Saving).Steps)
	})
}

// TestSameStateDoesNotRestart: the service may Set the same state again;
// the rhythm must not restart (it would look like a different pattern).
func TestSameStateDoesNotRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, rec := newRig(t, rigs[0])
		l.Set(Booting)
		follow(t, rec, 0, PatternOf(Booting).Steps[:1])
		l.Set(Booting)
		l.Set(Booting)
		// The next change is still the end of the first step, not a restart.
		b := PatternOf(Booting).Steps
		follow(t, rec, 500*time.Millisecond, append(b[1:], b...))
	})
}

func TestSysfsTakesOverAndRestoresTrigger(t *testing.T) {
	root := sysfsTree(t, "led0", "1", "none [heartbeat] timer")
	s, err := OpenSysfs(root, "", true)
	if err != nil {
		t.Fatal(err)
	}
	read := func(f string) string {
		b, err := os.ReadFile(filepath.Join(root, "led0", f))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if read("trigger") != "none" {
		t.Errorf("trigger = %q, want none", read("trigger"))
	}
	if err := s.Set(true); err != nil || read("brightness") != "0" {
		t.Errorf("active-low on: brightness %q, %v", read("brightness"), err)
	}
	if err := s.Set(false); err != nil || read("brightness") != "1" {
		t.Errorf("active-low off: brightness %q, %v", read("brightness"), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if read("trigger") != "heartbeat" || read("brightness") != "1" {
		t.Errorf("after Close: trigger %q brightness %q, want heartbeat, off", read("trigger"), read("brightness"))
	}
}

func TestNewFromConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		root := sysfsTree(t, "ACT", "1", "[mmc0] none")
		cfg := DefaultConfig()
		cfg.SysfsRoot = root
		l, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		l.Set(Recording)
		// The pattern's goroutine has written the LED once it waits again.
		synctest.Wait()
		if b, _ := os.ReadFile(filepath.Join(root, "ACT", "brightness")); string(b) != "1" {
			t.Fatalf("brightness %q after Set(Recording)", b)
		}
		if err := l.Close(); err != nil || l.Err() != nil {
			t.Fatal(err, l.Err())
		}
		if b, _ := os.ReadFile(filepath.Join(root, "ACT", "trigger")); string(b) != "mmc0" {
			t.Errorf("trigger after Close = %q", b)
		}

		cfg.SysfsName = "nope"
		if _, err := New(cfg); !errors.Is(err, ErrNoLED) || !strings.Contains(err.Error(), "leds.sysfs_name") {
			t.Errorf("New with a missing LED = %v", err)
		}
		cfg = DefaultConfig()
		cfg.SysfsRoot = filepath.Join(root, "missing")
		if _, err := New(cfg); !errors.Is(err, ErrNoLED) || !strings.Contains(err.Error(), "ACT or led0") {
			t.Errorf("New with no ACT/led0 = %v", err)
		}
		none, err := New(Config{Driver: DriverNone})
		if err != nil {
			t.Fatalf("driver none: %v", err)
		}
		none.Close()
	})
}

func TestNewGPIOWithoutChip(t *testing.T) {
	cfg, want := Config{Driver: DriverGPIO, GPIOLine: "GPIO17"}, "/dev/gpiochip"
	if m, _ := filepath.Glob("/dev/gpiochip*"); len(m) > 0 {
		// This machine has chips: ask for one it does not have.
		cfg.GPIOChip, want = "nosuchchip", "leds.gpio_chip"
	}
	_, err := New(cfg)
	if !errors.Is(err, ErrNoLED) || !strings.Contains(err.Error(), want) {
		t.Errorf("New(gpio) = %v, want an error naming %s", err, want)
	}
}

func TestConfigValidateNamesField(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Driver: "laser"}, "leds.driver"},
		{Config{Driver: DriverGPIO}, "leds.gpio_line"},
		{Config{Driver: DriverSysfs}, "leds.sysfs_root"},
		{Config{Driver: DriverSysfs, SysfsRoot: "/sys/class/leds", SysfsName: "../x"}, "leds.sysfs_name"},
	} {
		if err := c.cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Error(err)
	}
}

// TestConfigValidateEveryProblem: one run names every field at fault.
func TestConfigValidateEveryProblem(t *testing.T) {
	err := Config{Driver: DriverSysfs, SysfsName: "../x"}.Validate()
	for _, f := range []string{"leds.sysfs_root: ", "leds.sysfs_name: "} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("Validate = %v, want a line for %s", err, f)
		}
	}
}

func TestParseState(t *testing.T) {
	for _, s := range States() {
		if got, err := ParseState(s.String()); err != nil || got != s {
			t.Errorf("ParseState(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseState("disco"); err == nil || !strings.Contains(err.Error(), `"disco"`) {
		t.Errorf("ParseState(disco) = %v", err)
	}
}

// TestPatternTable pins each pattern to the LED table of
// docs/provider/leds-and-sounds.md ("## LED patterns"): milliseconds on
// (+) and off (-), 0 for steady.
func TestPatternTable(t *testing.T) {
	want := map[State]string{
		Off:            "-0",
		Booting:        "+500 -500",
		Recording:      "+0",
		Pressed:        "+50 -50 +50 -50 +50 -50 +50 -50 +50 -50 +50 -50 +50 -50 +50 -50 +50 -50 +50 -50 once",
		Saving:         "+125 -125",
		Uploading:      "+1800 -200",
		FaultNoDisk:    "+300 -300 +300 -2000",
		FaultDiskFull:  "+300 -300 +300 -300 +300 -2000",
		FaultNoLink:    "+300 -300 +300 -300 +300 -300 +300 -2000",
		FaultBadConfig: "+300 -300 +300 -300 +300 -300 +300 -300 +300 -2000",
	}
	for _, s := range States() {
		if got := render(PatternOf(s)); got != want[s] {
			t.Errorf("%v: pattern %q, the LED table says %q", s, got, want[s])
		}
	}
}

func TestNilLEDs(t *testing.T) {
	var l *LEDs
	l.Set(Recording)
	l.Flash(Pressed)
	if err := l.Close(); err != nil {
		t.Error(err)
	}
}

// TestFlashPressedCountsTheProfile: the acknowledgement of the profile
// at position n flickers n times, very fast, then the steady state comes
// back; no count looks like another or like a fault's slow blinks.
func TestFlashPressedCountsTheProfile(t *testing.T) {
	seen := map[string]int{}
	for n := 1; n <= MaxPressedCount; n++ {
		p := PressedCount(n)
		on, key := 0, ""
		for _, st := range p.Steps {
			if st.On {
				on++
				if st.Dur > 100*time.Millisecond {
					t.Errorf("count %d: an on step of %v is no flicker", n, st.Dur)
				}
			}
			if st.Dur < 50*time.Millisecond {
				t.Errorf("count %d: step of %v", n, st.Dur)
			}
			key += fmt.Sprint(st)
		}
		if on != n || !p.Once || !strings.Contains(p.Say, fmt.Sprint(n)) {
			t.Errorf("count %d: %d flickers, once %v, says %q", n, on, p.Once, p.Say)
		}
		for _, s := range States() {
			if fault := PatternOf(s); fmt.Sprint(fault.Steps) == fmt.Sprint(p.Steps) {
				t.Errorf("count %d looks like %v", n, s)
			}
		}
		if o, dup := seen[key]; dup {
			t.Errorf("count %d looks like count %d", n, o)
		}
		seen[key] = n
	}
	if fmt.Sprint(PressedCount(0).Steps) != fmt.Sprint(PatternOf(Pressed).Steps) {
		t.Error("count 0 is not the plain press pattern")
	}
	for _, n := range []int{1, 3} {
		synctest.Test(t, func(t *testing.T) {
			l, rec := newRig(t, rigs[0])
			l.Set(Recording)
			follow(t, rec, 0, []Step{{true, 0}})
			l.FlashPressed(n)
			end := follow(t, rec, 0, PressedCount(n).Steps)
			follow(t, rec, end, []Step{{true, 0}})
		})
	}
}

package leds

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Light is one LED.
type Light interface {
	// Set turns the LED on or off.
	Set(on bool) error
	// Close turns the LED off and gives it back (a sysfs LED gets its
	// previous trigger again).
	Close() error
}

// LEDs drives a Light with the pattern of the current state from its own
// goroutine, so that Set and Flash return at once.
type LEDs struct {
	light  Light
	notify chan struct{}
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once

	mu       sync.Mutex
	steady   State
	flash    State
	flashN   int // the flash is PressedCount(flashN) when > 0
	flashReq bool
	err      error // the first error of the light, kept for Err
}

// New opens the configured LED and shows Off until the first Set.
func New(cfg Config) (*LEDs, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var light Light
	var err error
	switch cfg.Driver {
	case DriverSysfs:
		light, err = OpenSysfs(cfg.SysfsRoot, cfg.SysfsName, cfg.ActiveLow)
	case DriverGPIO:
		light, err = openGPIO(cfg)
	default:
		light = noLight{}
	}
	if err != nil {
		return nil, err
	}
	return NewWithLight(light), nil
}

// NewWithLight drives light. Its patterns run on the time package's
// timers, which a test fakes with testing/synctest.
func NewWithLight(light Light) *LEDs {
	l := &LEDs{light: light, notify: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

type noLight struct{}

func (noLight) Set(bool) error { return nil }
func (noLight) Close() error   { return nil }

// Set shows s until the next Set. A flash being shown finishes first.
// Set and Flash on a nil *LEDs do nothing, so a probe without an LED needs
// no special case.
func (l *LEDs) Set(s State) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.steady = s
	l.mu.Unlock()
	l.wake()
}

// Flash shows s's pattern once (for a steady pattern: one second), then
// the steady state again. A new Flash restarts it.
func (l *LEDs) Flash(s State) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.flash, l.flashN, l.flashReq = s, 0, true
	l.mu.Unlock()
	l.wake()
}

// FlashPressed shows PressedCount(n) once, then the steady state again.
func (l *LEDs) FlashPressed(n int) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.flash, l.flashN, l.flashReq = Pressed, n, true
	l.mu.Unlock()
	l.wake()
}

// State returns the steady state last Set.
func (l *LEDs) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.steady
}

// Err returns the first error the LED gave, if any; the patterns carry on
// regardless, so the service can log it once.
func (l *LEDs) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *LEDs) wake() {
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// Close stops the patterns, turns the LED off and releases it.
func (l *LEDs) Close() error {
	if l == nil {
		return nil
	}
	var err error
	l.once.Do(func() {
		close(l.quit)
		<-l.done
		err = l.light.Close()
	})
	return err
}

// flashSteady is how long Flash shows a steady pattern.
const flashSteady = time.Second

func (l *LEDs) run() {
	defer close(l.done)
	var (
		timer    *time.Timer
		timerC   <-chan time.Time
		pat      Pattern
		shown    State = -1
		step     int
		flashing bool
	)
	stop := func() {
		if timer != nil {
			timer.Stop()
			timer, timerC = nil, nil
		}
	}
	apply := func() {
		s := pat.Steps[step]
		l.write(s.On)
		if s.Dur > 0 {
			timer = time.NewTimer(s.Dur)
			timerC = timer.C
		}
	}
	start := func(s State, flash bool, n int) {
		stop()
		pat, step, shown, flashing = PatternOf(s), 0, s, flash
		if flash && n > 0 {
			pat = PressedCount(n)
		}
		if flash && pat.Cycle() == 0 {
			pat = Pattern{Steps: []Step{{pat.Steps[0].On, flashSteady}}, Once: true}
		}
		if flash {
			pat.Once = true
		}
		apply()
	}
	for {
		select {
		case <-l.quit:
			stop()
			l.write(false)
			return
		case <-l.notify:
			l.mu.Lock()
			steady, flash, n, req := l.steady, l.flash, l.flashN, l.flashReq
			l.flashReq = false
			l.mu.Unlock()
			switch {
			case req:
				start(flash, true, n)
			case flashing:
				// The new steady state follows when the flash ends.
			case steady != shown:
				start(steady, false, 0)
			}
		case <-timerC:
			timer, timerC = nil, nil
			step++
			if step == len(pat.Steps) {
				if pat.Once {
					start(l.State(), false, 0)
					continue
				}
				step = 0
			}
			apply()
		}
	}
}

func (l *LEDs) write(on bool) {
	if err := l.light.Set(on); err != nil {
		l.mu.Lock()
		if l.err == nil {
			l.err = err
		}
		l.mu.Unlock()
	}
}

// ErrNoLED means the configured LED does not exist on this machine.
var ErrNoLED = errors.New("no such LED")

func notFound(what string, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrNoLED, what, err)
}

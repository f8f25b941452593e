package leds

import (
	"fmt"
	"time"
)

// State is what the LED shows.
type State int

// The states. The fault states name the most urgent problem; the service
// shows one at a time.
const (
	Off State = iota
	Booting
	Recording
	Pressed // momentary: shown with Flash
	Saving
	Uploading
	FaultNoDisk
	FaultDiskFull
	FaultNoLink
	FaultBadConfig
)

var stateNames = [...]string{
	Off:            "off",
	Booting:        "booting",
	Recording:      "recording",
	Pressed:        "pressed",
	Saving:         "saving",
	Uploading:      "uploading",
	FaultNoDisk:    "fault-no-disk",
	FaultDiskFull:  "fault-disk-full",
	FaultNoLink:    "fault-no-link",
	FaultBadConfig: "fault-bad-config",
}

// States lists every state in the order of the constants.
func States() []State {
	s := make([]State, len(stateNames))
	for i := range s {
		s[i] = State(i)
	}
	return s
}

// String returns the state's name as ParseState accepts it.
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// ParseState returns the state called name.
func ParseState(name string) (State, error) {
	for i, n := range stateNames {
		if n == name {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("unknown LED state %q (want one of %v)", name, stateNames)
}

// Step is one part of a pattern: the LED on or off for Dur. Dur 0 means
// for good (a steady state).
type Step struct {
	On  bool
	Dur time.Duration
}

// Pattern is how a state looks.
type Pattern struct {
	// Steps repeat from the start after the last one, unless Once.
	Steps []Step
	// Once marks a momentary pattern: it plays one time, then the steady
	// state's pattern comes back.
	Once bool
	// Say is how a customer would describe it on the phone.
	Say string
}

// Cycle returns the length of one round of the pattern (0 for a steady one).
func (p Pattern) Cycle() time.Duration {
	var d time.Duration
	for _, s := range p.Steps {
		d += s.Dur
	}
	return d
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// faultBlinks returns n long blinks followed by a pause: the count tells
// the fault apart, as on a car's dashboard.
func faultBlinks(n int, say string) Pattern {
	var p Pattern
	for i := 0; i < n; i++ {
		p.Steps = append(p.Steps, Step{true, ms(300)}, Step{false, ms(300)})
	}
	p.Steps[len(p.Steps)-1].Dur = ms(2000)
	p.Say = say
	return p
}

func repeat(n int, steps ...Step) []Step {
	var out []Step
	for i := 0; i < n; i++ {
		out = append(out, steps...)
	}
	return out
}

// MaxPressedCount is the most flickers PressedCount counts.
const MaxPressedCount = 8

// PressedCount is the press acknowledgement for the profile at position
// n: n very fast flickers, then dark, so the count is seen; unlike the
// faults' slow blinks. n outside 1..MaxPressedCount is Pressed's pattern.
func PressedCount(n int) Pattern {
	if n < 1 || n > MaxPressedCount {
		return PatternOf(Pressed)
	}
	p := Pattern{Steps: repeat(n, Step{true, ms(50)}, Step{false, ms(100)}), Once: true,
		Say: fmt.Sprintf("flickers very fast %d times (press taken for button %d)", n, n)}
	p.Steps[len(p.Steps)-1].Dur = ms(600)
	return p
}

// PatternOf returns the pattern of s. Unknown states look like Off.
func PatternOf(s State) Pattern {
	switch s {
	case Booting:
		return Pattern{Steps: []Step{{true, ms(500)}, {false, ms(500)}}, Say: "blinks slowly, once a second"}
	case Recording:
		return Pattern{Steps: []Step{{true, 0}}, Say: "steady on"}
	case Pressed:
		return Pattern{Steps: repeat(10, Step{true, ms(50)}, Step{false, ms(50)}), Once: true,
			Say: "flickers very fast for one second (press taken)"}
	case Saving:
		return Pattern{Steps: []Step{{true, ms(125)}, {false, ms(125)}}, Say: "blinks fast, four times a second"}
	case Uploading:
		return Pattern{Steps: []Step{{true, ms(1800)}, {false, ms(200)}}, Say: "on, going dark briefly every two seconds"}
	case FaultNoDisk:
		return faultBlinks(2, "blinks twice, then pauses: no USB disk")
	case FaultDiskFull:
		return faultBlinks(3, "blinks three times, then pauses: USB disk full or read-only")
	case FaultNoLink:
		return faultBlinks(4, "blinks four times, then pauses: capture port has no link")
	case FaultBadConfig:
		return faultBlinks(5, "blinks five times, then pauses: bad configuration")
	}
	return Pattern{Steps: []Step{{false, 0}}, Say: "off"}
}

// Package feedback is what the customer sees and hears: the beeper and the
// LED acknowledge presses and show the probe's state.
package feedback

import (
	"sync"
	"time"

	"github.com/presscap/presscap/beeper"
	"github.com/presscap/presscap/leds"
)

// Feedback is what the customer sees and hears. Each call returns at once.
type Feedback interface {
	// Pressed acknowledges a press (beep and LED flash); n is the
	// profile's position from 1 (as many beeps and flickers), 0 without
	// profiles.
	Pressed(n int)
	// Saved says the files of a window are written.
	Saved()
	// State shows the steady state: "recording", "saving", or a fault
	// ("no-disk", "disk-full", "no-link", "bad-config").
	State(state string)
	// Fault sounds the fault signal once.
	Fault(reason string)
	// Uploaded says an upload finished.
	Uploaded()
}

// Nop shows nothing.
type Nop struct{}

func (Nop) Pressed(int)  {}
func (Nop) Saved()       {}
func (Nop) State(string) {}
func (Nop) Fault(string) {}
func (Nop) Uploaded()    {}

// Device is Feedback on the box's speaker and LED. Either may be
// nil.
type Device struct {
	Beeper *beeper.Beeper
	LEDs   *leds.LEDs
}

// Pressed beeps and flashes the LED: n times for the profile at
// position n, today's single ack without profiles (n 0).
func (f Device) Pressed(n int) {
	if f.Beeper != nil {
		f.Beeper.Play(beeper.AckProfile(n))
	}
	if f.LEDs != nil {
		if n > 0 {
			f.LEDs.FlashPressed(n)
		} else {
			f.LEDs.Flash(leds.Pressed)
		}
	}
}

// Saved plays the saved sound.
func (f Device) Saved() {
	if f.Beeper != nil {
		f.Beeper.Play(beeper.Saved)
	}
}

// State shows a steady state on the LED.
func (f Device) State(s string) {
	if f.LEDs == nil {
		return
	}
	st := map[string]leds.State{
		"recording":  leds.Recording,
		"saving":     leds.Saving,
		"uploading":  leds.Uploading,
		"no-disk":    leds.FaultNoDisk,
		"disk-full":  leds.FaultDiskFull,
		"no-link":    leds.FaultNoLink,
		"bad-config": leds.FaultBadConfig,
		"booting":    leds.Booting,
	}[s]
	if f.LEDs.State() != st {
		f.LEDs.Set(st)
	}
}

// Fault plays the fault sound.
func (f Device) Fault(string) {
	if f.Beeper != nil {
		f.Beeper.Play(beeper.Fault)
	}
}

// Uploaded plays the uploaded sound.
func (f Device) Uploaded() {
	if f.Beeper != nil {
		f.Beeper.Play(beeper.Uploaded)
	}
}

// The reasons the service passes to Feedback.Fault.
const (
	FaultNotSaved = "window not saved"           // answers a press
	FaultRecovery = "pending records unreadable" // found at start
	FaultUpload   = "upload failed"
)

// Evening keeps the customer's evening quiet: the sounds that do not answer
// a press (upload done, upload failed, faults found at start) are not
// played in the quiet hours, and such a fault sounds once until it clears
// (an upload that fails on every retry, once; again after a success). A
// press, its save and a failed save always sound.
type Evening struct {
	Feedback
	// Quiet says whether a time is in the quiet hours (beeper.quiet in
	// clock.time_zone); nil is never quiet.
	Quiet func(time.Time) bool

	mu      sync.Mutex
	sounded map[string]bool // faults sounded (or kept quiet) and not cleared
}

func (e *Evening) quiet() bool {
	if e.Quiet == nil {
		return false
	}
	return e.Quiet(time.Now())
}

// Fault sounds a fault that answers a press always, another once until it
// clears and only outside the quiet hours.
func (e *Evening) Fault(reason string) {
	if reason == FaultNotSaved {
		e.Feedback.Fault(reason)
		return
	}
	e.mu.Lock()
	again := e.sounded[reason]
	if e.sounded == nil {
		e.sounded = map[string]bool{}
	}
	e.sounded[reason] = true
	e.mu.Unlock()
	if !again && !e.quiet() {
		e.Feedback.Fault(reason)
	}
}

// Uploaded clears the upload fault and sounds outside the quiet hours.
func (e *Evening) Uploaded() {
	e.mu.Lock()
	delete(e.sounded, FaultUpload)
	e.mu.Unlock()
	if !e.quiet() {
		e.Feedback.Uploaded()
	}
}

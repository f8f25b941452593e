package service

import (
	"sync"
	"time"

	"github.com/presscap/presscap/beeper"
	"github.com/presscap/presscap/leds"
)

// DeviceFeedback is Feedback on the box's speaker and LED. Either may be
// nil.
type DeviceFeedback struct {
	Beeper *beeper.Beeper
	LEDs   *leds.LEDs
}

// Pressed beeps and flashes the LED: n times for the profile at
// position n, today's single ack without profiles (n 0).
func (f DeviceFeedback) Pressed(n int) {
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
func (f DeviceFeedback) Saved() {
	if f.Beeper != nil {
		f.Beeper.Play(beeper.Saved)
	}
}

// State shows a steady state on the LED.
func (f DeviceFeedback) State(s string) {
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
func (f DeviceFeedback) Fault(string) {
	if f.Beeper != nil {
		f.Beeper.Play(beeper.Fault)
	}
}

// Uploaded plays the uploaded sound.
func (f DeviceFeedback) Uploaded() {
	if f.Beeper != nil {
		f.Beeper.Play(beeper.Uploaded)
	}
}

// The reasons the service passes to Feedback.Fault.
const (
	FaultNotSaved = "capture not saved"          // answers a press
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
	// Now is the clock; nil is time.Now.
	Now func() time.Time

	mu      sync.Mutex
	sounded map[string]bool // faults sounded (or kept quiet) and not cleared
}

func (e *Evening) quiet() bool {
	if e.Quiet == nil {
		return false
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	return e.Quiet(now())
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

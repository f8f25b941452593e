package service

import (
	"github.com/presscap/presscap/beeper"
	"github.com/presscap/presscap/leds"
)

// DeviceFeedback is Feedback on the box's speaker and LED. Either may be
// nil.
type DeviceFeedback struct {
	Beeper *beeper.Beeper
	LEDs   *leds.LEDs
}

// Pressed beeps and flashes the LED.
func (f DeviceFeedback) Pressed() {
	if f.Beeper != nil {
		f.Beeper.Play(beeper.Ack)
	}
	if f.LEDs != nil {
		f.LEDs.Flash(leds.Pressed)
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

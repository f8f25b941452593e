// Package beeper plays short distinct sounds on an optional USB sound device,
// so that a customer who cannot read logs hears that a press was taken, files
// were saved, an upload finished or something is wrong. A missing or vanished
// device never stops or delays the caller.
//
// This file holds the package's configuration section, which probe/config
// embeds under the JSON key "beeper".
package beeper

import (
	"fmt"
	"strings"
	"time"

	"github.com/presscap/presscap/internal/daytime"
	"github.com/presscap/presscap/internal/field"
)

// Config is this package's section of the probe configuration.
type Config struct {
	// Enable turns the beeper on. Off, Play does nothing.
	Enable bool `json:"enable"`
	// Device selects the sound device. Empty means the first USB sound card
	// in /proc/asound with a playback device (the box's optional speaker,
	// not a webcam's microphone). Otherwise one of:
	// an ALSA card id as in /proc/asound/cards ("Device", "Headphones"),
	// "hw:C" or "hw:C,D" (card C, PCM device D), or a PCM device path such
	// as "/dev/snd/pcmC1D0p". With the portaudio build tag it is matched
	// against portaudio's device names; empty means the default output.
	Device string `json:"device"`
	// Volume is the loudness in percent of full scale, 0 to 100.
	Volume int `json:"volume"`
	// Rate forces a sample rate in Hz (48000 or 44100); 0 tries 48000,
	// then 44100, whichever the card accepts.
	Rate int `json:"rate"`
	// Quiet is "HH:MM-HH:MM", the quiet hours in clock.time_zone: sounds
	// that do not answer a press (upload done or failed, faults found
	// alone) are not played then. It may span midnight; "" is never quiet.
	Quiet string `json:"quiet"`
}

// DefaultConfig returns the configuration used when the file omits the section.
func DefaultConfig() Config {
	return Config{Enable: true, Volume: 70, Quiet: "21:00-08:00"}
}

// Validate reports every problem, each naming its JSON field, as
// field.Errors.
func (c Config) Validate() error {
	var es field.Errors
	if c.Volume < 0 || c.Volume > 100 {
		es.Add("beeper.volume", "%d is outside 0..100", c.Volume)
	}
	switch c.Rate {
	case 0, 44100, 48000:
	default:
		es.Add("beeper.rate", "%d Hz is not supported (use 0, 44100 or 48000)", c.Rate)
	}
	if _, _, err := parseQuiet(c.Quiet); err != nil {
		es.Add("beeper.quiet", "%v", err)
	}
	if strings.ContainsAny(c.Device, "\x00\n") {
		es.Add("beeper.device", "%q contains a control character", c.Device)
	}
	return es.Err()
}

// QuietAt says whether t, on the clock of its own location, is in the
// quiet hours. A bad Quiet (refused by Validate) is never quiet.
func (c Config) QuietAt(t time.Time) bool {
	from, to, err := parseQuiet(c.Quiet)
	if err != nil || from == to {
		return false
	}
	m := t.Hour()*60 + t.Minute()
	if from < to {
		return m >= from && m < to
	}
	return m >= from || m < to // across midnight
}

// parseQuiet reads "HH:MM-HH:MM" into minutes of the day; "" gives 0, 0.
func parseQuiet(s string) (from, to int, err error) {
	if s == "" {
		return 0, 0, nil
	}
	if from, to, err = daytime.ParseRange(s); err != nil {
		return 0, 0, fmt.Errorf("%w (empty: never quiet)", err)
	}
	if from == to {
		return 0, 0, fmt.Errorf("%q starts and ends at the same time (empty: never quiet)", s)
	}
	return from, to, nil
}

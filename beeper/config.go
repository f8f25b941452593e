// Package beeper plays short distinct sounds on an optional USB sound device,
// so that a customer who cannot read logs hears that a press was taken, files
// were saved, an upload finished or something is wrong. A missing or vanished
// device never stops or delays the caller.
//
// This file holds the package's configuration section, which probe/config
// embeds under the JSON key "beeper".
package beeper

import (
	"strings"

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
}

// DefaultConfig returns the configuration used when the file omits the section.
func DefaultConfig() Config {
	return Config{Enable: true, Volume: 70}
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
	if strings.ContainsAny(c.Device, "\x00\n") {
		es.Add("beeper.device", "%q contains a control character", c.Device)
	}
	return es.Err()
}

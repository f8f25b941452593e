// Package tone renders short beeps as 16-bit PCM samples.
package tone

import (
	"math"
	"time"
)

// Segment is one part of a sound: a sine at Freq Hz for Dur, or silence
// when Freq is 0.
type Segment struct {
	Freq float64
	Dur  time.Duration
}

// Ramp is the fade-in and fade-out of every tone segment. Without it the
// speaker clicks at the start and end of each beep.
const Ramp = 4 * time.Millisecond

// Frames returns how many frames segs last at rate Hz. Each segment is
// rounded to whole frames on its own, so Render returns exactly this many.
func Frames(segs []Segment, rate int) int {
	n := 0
	for _, s := range segs {
		n += segFrames(s, rate)
	}
	return n
}

func segFrames(s Segment, rate int) int {
	return int(math.Round(s.Dur.Seconds() * float64(rate)))
}

// Render returns segs as interleaved signed 16-bit samples (the same value
// on every channel) at rate Hz. amplitude is the peak as a fraction of full
// scale; it is clamped to 0..1.
func Render(segs []Segment, rate, channels int, amplitude float64) []int16 {
	amplitude = math.Max(0, math.Min(1, amplitude))
	peak := amplitude * math.MaxInt16
	out := make([]int16, 0, Frames(segs, rate)*channels)
	ramp := int(Ramp.Seconds() * float64(rate))
	for _, s := range segs {
		n := segFrames(s, rate)
		r := ramp
		if 2*r > n {
			r = n / 2
		}
		for i := 0; i < n; i++ {
			var v float64
			if s.Freq > 0 {
				v = math.Sin(2 * math.Pi * s.Freq * float64(i) / float64(rate))
				switch {
				case i < r:
					v *= float64(i) / float64(r)
				case i >= n-r:
					v *= float64(n-1-i) / float64(r)
				}
			}
			x := int16(math.Round(v * peak))
			for c := 0; c < channels; c++ {
				out = append(out, x)
			}
		}
	}
	return out
}

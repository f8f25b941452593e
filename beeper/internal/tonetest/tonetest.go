// Package tonetest measures the pitch of rendered or recorded samples for
// the beeper's tests, so that every test judges a tone the same way.
package tonetest

import "math"

// Goertzel returns the power of frequency f in x (sampled at rate),
// normalised so that a full-length sine of amplitude A gives about A²/4·n².
func Goertzel(x []float64, f float64, rate int) float64 {
	w := 2 * math.Pi * f / float64(rate)
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range x {
		s0 := v + c*s1 - s2
		s2, s1 = s1, s0
	}
	return s1*s1 + s2*s2 - c*s1*s2
}

// Dominant scans lo to hi Hz in 10 Hz steps, then ±10 Hz around the
// strongest in 0.5 Hz steps (a fine scan of the whole range would be slow),
// and returns the strongest frequency.
func Dominant(x []float64, rate int, lo, hi float64) float64 {
	scan := func(lo, hi, step float64) float64 {
		best, bestP := lo, -1.0
		for f := lo; f <= hi; f += step {
			if p := Goertzel(x, f, rate); p > bestP {
				best, bestP = f, p
			}
		}
		return best
	}
	c := scan(lo, hi, 10)
	return scan(c-10, c+10, 0.5)
}

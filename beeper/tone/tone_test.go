package tone

import (
	"math"
	"testing"
	"time"

	"github.com/presscap/presscap/beeper/internal/tonetest"
)

func channel(s []int16, channels, c, from, to int) []float64 {
	var x []float64
	for i := from; i < to; i++ {
		x = append(x, float64(s[i*channels+c]))
	}
	return x
}

func TestRenderFrequencyLengthAmplitude(t *testing.T) {
	segs := []Segment{{Freq: 1000, Dur: 100 * time.Millisecond}, {Dur: 50 * time.Millisecond}, {Freq: 440, Dur: 250 * time.Millisecond}, {Freq: 2637, Dur: 80 * time.Millisecond}}
	for _, rate := range []int{48000, 44100} {
		for _, channels := range []int{1, 2} {
			for _, amp := range []float64{1, 0.5, 0.1} {
				s := Render(segs, rate, channels, amp)
				wantFrames := 0
				for _, sg := range segs {
					wantFrames += int(math.Round(sg.Dur.Seconds() * float64(rate)))
				}
				if len(s) != wantFrames*channels || Frames(segs, rate) != wantFrames {
					t.Fatalf("%d Hz %d ch: %d samples, Frames %d; want %d frames", rate, channels, len(s), Frames(segs, rate), wantFrames)
				}
				for i := 0; i < wantFrames; i++ {
					for c := 1; c < channels; c++ {
						if s[i*channels+c] != s[i*channels] {
							t.Fatalf("channel %d differs at frame %d", c, i)
						}
					}
				}
				from := 0
				for _, sg := range segs {
					n := int(math.Round(sg.Dur.Seconds() * float64(rate)))
					x := channel(s, channels, channels-1, from, from+n)
					peak := 0.0
					for _, v := range x {
						peak = math.Max(peak, math.Abs(v))
					}
					if sg.Freq == 0 {
						if peak != 0 {
							t.Errorf("silence has peak %v", peak)
						}
					} else {
						if got := tonetest.Dominant(x, rate, 50, 5000); math.Abs(got-sg.Freq) > sg.Freq*0.01 {
							t.Errorf("%d Hz %d ch amp %v: segment of %v Hz measures %v Hz", rate, channels, amp, sg.Freq, got)
						}
						if want := amp * math.MaxInt16; math.Abs(peak-want) > want*0.01+1 {
							t.Errorf("amp %v: peak %v, want %v", amp, peak, want)
						}
						// The ramp starts and ends each beep near zero, so the speaker does not click.
						if math.Abs(x[0]) > 0 || math.Abs(x[len(x)-1]) > 0 {
							t.Errorf("segment of %v Hz starts at %v and ends at %v, want 0", sg.Freq, x[0], x[len(x)-1])
						}
					}
					from += n
				}
			}
		}
	}
}

func TestRenderVolumeZeroAndClamp(t *testing.T) {
	segs := []Segment{{Freq: 800, Dur: 10 * time.Millisecond}}
	for _, v := range Render(segs, 48000, 1, 0) {
		if v != 0 {
			t.Fatal("volume 0 is not silent")
		}
	}
	peak := 0
	for _, v := range Render(segs, 48000, 1, 7) {
		peak = max(peak, int(math.Abs(float64(v))))
	}
	if peak > math.MaxInt16 || peak < 32000 {
		t.Errorf("amplitude 7 clamps to peak %d, want about 32767", peak)
	}
}

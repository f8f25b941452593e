package feedback

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/presscap/presscap/beeper"
	"github.com/presscap/presscap/leds"
)

// soundCard is a beeper output that keeps each sound's samples.
type soundCard struct {
	mu     sync.Mutex
	sounds [][]int16
}

func (c *soundCard) Open() (beeper.Stream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sounds = append(c.sounds, nil)
	return &cardStream{c: c, i: len(c.sounds) - 1}, nil
}

type cardStream struct {
	c *soundCard
	i int
}

func (s *cardStream) Rate() int     { return 48000 }
func (s *cardStream) Channels() int { return 1 }
func (s *cardStream) Drain() error  { return nil }
func (s *cardStream) Close() error  { return nil }
func (s *cardStream) Write(x []int16) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.sounds[s.i] = append(s.c.sounds[s.i], x...)
	return nil
}

// beeps counts the runs of sound separated by at least 10 ms of silence.
func beeps(x []int16) int {
	n, zeros, in := 0, 0, false
	for _, v := range x {
		if v == 0 {
			zeros++
			if zeros > 480 {
				in = false
			}
			continue
		}
		zeros = 0
		if !in {
			n, in = n+1, true
		}
	}
	return n
}

// lamp is an LED that counts how often it was turned on.
type lamp struct {
	mu  sync.Mutex
	on  bool
	ons int
}

func (l *lamp) Set(on bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if on && !l.on {
		l.ons++
	}
	l.on = on
	return nil
}
func (l *lamp) Close() error { return nil }

// TestDeviceCountsProfile: the service's acknowledgement of a
// press for the profile at position n is n beeps on the sound device and
// n flickers of the LED; without profiles, today's single beep and the
// one-second flicker.
func TestDeviceCountsProfile(t *testing.T) {
	for _, tc := range []struct{ n, beeps, flickers int }{{1, 1, 1}, {2, 2, 2}, {4, 4, 4}, {0, 1, 10}} {
		// In a bubble the LED's pattern runs on the fake clock.
		synctest.Test(t, func(t *testing.T) {
			card, led := &soundCard{}, &lamp{}
			cfg := beeper.DefaultConfig()
			cfg.Enable = true
			b := beeper.NewWithOutput(cfg, nil, card)
			l := leds.NewWithLight(led)
			l.Set(leds.Off)
			Device{Beeper: b, LEDs: l}.Pressed(tc.n)
			time.Sleep(2 * time.Second) // past the longest flicker pattern
			synctest.Wait()
			b.Close()
			l.Close()
			if len(card.sounds) != 1 {
				t.Fatalf("profile %d: %d sounds, want 1", tc.n, len(card.sounds))
			}
			if got := beeps(card.sounds[0]); got != tc.beeps {
				t.Errorf("profile %d: %d beeps, want %d", tc.n, got, tc.beeps)
			}
			if led.ons != tc.flickers {
				t.Errorf("profile %d: LED flickered %d times, want %d", tc.n, led.ons, tc.flickers)
			}
		})
	}
}

package beeper

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/presscap/presscap/beeper/tone"
)

// Sound is one of the beeper's distinct sounds.
type Sound int

// The sounds, one per event the customer should hear.
const (
	// Ack: the press was taken (one short high beep).
	Ack Sound = iota + 1
	// Saved: the window's files are written (two rising beeps).
	Saved
	// Uploaded: the upload finished (three rising beeps).
	Uploaded
	// Fault: something needs attention (a long falling low tone).
	Fault
)

var soundNames = map[Sound]string{Ack: "ack", Saved: "saved", Uploaded: "uploaded", Fault: "fault"}

// ackBase + n is AckProfile(n): beyond the named sounds.
const ackBase Sound = 100

// MaxAckCount is the most beeps AckProfile counts.
const MaxAckCount = 8

// AckProfile is the press acknowledgement for the profile at position n
// (1 to MaxAckCount): n short high beeps, so the customer hears which
// button was taken; Ack for any other n.
func AckProfile(n int) Sound {
	if n < 1 || n > MaxAckCount {
		return Ack
	}
	return ackBase + Sound(n)
}

// ackCount is the beeps of an AckProfile sound, or 0.
func (s Sound) ackCount() int {
	if s > ackBase && s <= ackBase+MaxAckCount {
		return int(s - ackBase)
	}
	return 0
}

// Sounds lists every sound, in the order of the constants.
func Sounds() []Sound { return []Sound{Ack, Saved, Uploaded, Fault} }

// String returns the sound's name as ParseSound accepts it.
func (s Sound) String() string {
	if n, ok := soundNames[s]; ok {
		return n
	}
	if n := s.ackCount(); n > 0 {
		return fmt.Sprintf("ack-%d", n)
	}
	return fmt.Sprintf("Sound(%d)", int(s))
}

// ParseSound returns the sound called name ("ack", "saved", "uploaded", "fault").
func ParseSound(name string) (Sound, error) {
	for s, n := range soundNames {
		if n == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("unknown sound %q (want ack, saved, uploaded or fault)", name)
}

// Segments returns the tones that make up s.
func (s Sound) Segments() []tone.Segment {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	if n := s.ackCount(); n > 0 {
		// Higher and shorter than Ack, a beat apart: countable, and
		// unlike the fault's long falling tone.
		var segs []tone.Segment
		for i := 0; i < n; i++ {
			if i > 0 {
				segs = append(segs, tone.Segment{Dur: ms(90)})
			}
			segs = append(segs, tone.Segment{Freq: 2093, Dur: ms(60)})
		}
		return segs
	}
	switch s {
	case Ack:
		return []tone.Segment{{Freq: 1760, Dur: ms(120)}}
	case Saved:
		return []tone.Segment{{Freq: 880, Dur: ms(110)}, {Dur: ms(60)}, {Freq: 1320, Dur: ms(110)}}
	case Uploaded:
		return []tone.Segment{{Freq: 1047, Dur: ms(90)}, {Dur: ms(50)}, {Freq: 1319, Dur: ms(90)}, {Dur: ms(50)}, {Freq: 1568, Dur: ms(140)}}
	case Fault:
		return []tone.Segment{{Freq: 440, Dur: ms(300)}, {Freq: 330, Dur: ms(300)}, {Freq: 220, Dur: ms(400)}}
	}
	return nil
}

// Logger receives the beeper's rare messages (device lost, device back).
// *log.Logger satisfies it.
type Logger interface {
	Printf(format string, args ...any)
}

// Output is a sound device. The default is ALSA (or portaudio with the
// portaudio build tag); tests pass their own.
type Output interface {
	// Open claims the device for one sound. An error means the device is
	// missing or busy; it is tried again for the next sound.
	Open() (Stream, error)
}

// Stream is an open device that plays interleaved signed 16-bit samples.
type Stream interface {
	// Rate and Channels are what the device agreed to.
	Rate() int
	Channels() int
	// Write queues samples (len a multiple of Channels) and blocks while the
	// device's buffer is full.
	Write(samples []int16) error
	// Drain waits until everything written has been played.
	Drain() error
	// Close releases the device.
	Close() error
}

// ErrDisabled is returned by PlayWait when the configuration disables the beeper.
var ErrDisabled = errors.New("beeper disabled in the configuration (beeper.enable)")

// Beeper plays sounds in the background, one at a time.
type Beeper struct {
	cfg   Config
	log   Logger
	out   Output
	queue chan Sound
	done  chan struct{}
	stop  context.CancelFunc
	ctx   context.Context

	mu      sync.Mutex // serialises device use between the worker and PlayWait
	missing bool       // the last attempt failed (no device, busy, pulled); logged once
	closed  sync.Once
}

// queueLen bounds the sounds waiting to play: more than a few queued beeps
// tell the customer nothing, so further ones are dropped.
const queueLen = 4

// New returns a Beeper on the configured device. It does not open the
// device: that happens per sound, so a speaker plugged in later is used.
// log may be nil.
func New(cfg Config, log Logger) *Beeper {
	return NewWithOutput(cfg, log, defaultOutput(cfg))
}

// NewWithOutput is New with a given sound device.
func NewWithOutput(cfg Config, log Logger, out Output) *Beeper {
	if log == nil {
		log = discard{}
	}
	ctx, stop := context.WithCancel(context.Background())
	b := &Beeper{cfg: cfg, log: log, out: out, queue: make(chan Sound, queueLen),
		done: make(chan struct{}), ctx: ctx, stop: stop}
	go b.run()
	return b
}

type discard struct{}

func (discard) Printf(string, ...any) {}

// Play queues s and returns at once: the trigger path never waits for audio.
// When the queue is full, or the beeper is disabled or closed, s is dropped.
// Play and Close on a nil *Beeper do nothing.
func (b *Beeper) Play(s Sound) {
	if b == nil || !b.cfg.Enable {
		return
	}
	select {
	case <-b.ctx.Done():
	case b.queue <- s:
	default:
	}
}

// PlayWait plays s and returns when it has been played, with the device's
// error if there is none. It is for `probe beep`, where an installer wants
// to know why the speaker stays quiet.
func (b *Beeper) PlayWait(ctx context.Context, s Sound) error {
	if !b.cfg.Enable {
		return ErrDisabled
	}
	if s.Segments() == nil {
		return fmt.Errorf("play: unknown sound %d", int(s))
	}
	return b.play(ctx, s)
}

// Close stops the background player after the sound being played, drops
// queued ones and releases the device.
func (b *Beeper) Close() error {
	if b == nil {
		return nil
	}
	b.closed.Do(func() {
		b.stop()
		<-b.done
	})
	return nil
}

func (b *Beeper) run() {
	defer close(b.done)
	for {
		select {
		case <-b.ctx.Done():
			return
		case s := <-b.queue:
			// Errors are logged by play on the device's state changes.
			_ = b.play(b.ctx, s)
		}
	}
}

// play renders s at the device's rate and plays it. A device that cannot be
// opened is logged once until it works again.
func (b *Beeper) play(ctx context.Context, s Sound) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	st, err := b.out.Open()
	if err != nil {
		if !b.missing {
			b.missing = true
			b.log.Printf("beeper: cannot open the sound device, sounds are skipped until it can be opened: %v", err)
		}
		return fmt.Errorf("open sound device: %w", err)
	}
	if b.missing {
		b.missing = false
		b.log.Printf("beeper: sound device is back")
	}
	samples := tone.Render(s.Segments(), st.Rate(), st.Channels(), float64(b.cfg.Volume)/100)
	err = writeAll(ctx, st, samples)
	if err == nil {
		err = st.Drain()
	}
	if cerr := st.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close sound device: %w", cerr)
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("play %v: %w", s, ctx.Err())
	}
	if err != nil {
		// A device pulled mid-sound: say so once, retry with the next sound.
		b.missing = true
		b.log.Printf("beeper: playing %v failed, sounds are skipped until the device works again: %v", s, err)
		return fmt.Errorf("play %v: %w", s, err)
	}
	return nil
}

// chunkFrames is how much is written per call, so that Close or a cancelled
// context stops a sound within about 20 ms.
const chunkFrames = 1024

func writeAll(ctx context.Context, st Stream, samples []int16) error {
	step := chunkFrames * st.Channels()
	for len(samples) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(step, len(samples))
		if err := st.Write(samples[:n]); err != nil {
			return err
		}
		samples = samples[n:]
	}
	return nil
}

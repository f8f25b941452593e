package beeper

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presscap/presscap/beeper/internal/tonetest"
	"github.com/presscap/presscap/beeper/tone"
)

// memOutput is an Output that keeps what it is given.
type memOutput struct {
	rate, channels int
	gate           chan struct{} // when set, Open waits for it
	entered        chan struct{} // when set, Open reports that it was called
	openErr        error

	mu     sync.Mutex
	sounds [][]int16
	opened int
}

func (o *memOutput) Open() (Stream, error) {
	if o.entered != nil {
		select {
		case o.entered <- struct{}{}:
		default:
		}
	}
	if o.gate != nil {
		<-o.gate
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.openErr != nil {
		return nil, o.openErr
	}
	o.opened++
	o.sounds = append(o.sounds, nil)
	return &memStream{o: o, i: len(o.sounds) - 1}, nil
}

func (o *memOutput) setErr(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.openErr = err
}

func (o *memOutput) played() [][]int16 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([][]int16(nil), o.sounds...)
}

type memStream struct {
	o *memOutput
	i int
}

func (s *memStream) Rate() int     { return s.o.rate }
func (s *memStream) Channels() int { return s.o.channels }
func (s *memStream) Write(x []int16) error {
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	s.o.sounds[s.i] = append(s.o.sounds[s.i], x...)
	return nil
}
func (s *memStream) Drain() error { return nil }
func (s *memStream) Close() error { return nil }

// logRec collects log lines.
type logRec struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRec) Printf(f string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(f, a...))
}

func (l *logRec) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// analyse splits mono samples into runs of sound separated by silence and
// returns each run's length and strongest frequency (10 Hz scan, then 0.5 Hz).
func analyse(x []int16, rate int) (lens []int, freqs []float64, peak int) {
	var runs [][]float64
	var cur []float64
	// Samples inside a ramp can be 0 only at the very edges; a gap of
	// silence is at least 1 ms of zeros.
	zeros := 0
	for _, v := range x {
		peak = max(peak, int(math.Abs(float64(v))))
		if v == 0 {
			zeros++
		} else {
			if zeros > rate/1000 && len(cur) > 0 {
				runs = append(runs, cur)
				cur = nil
			}
			zeros = 0
		}
		if v != 0 || len(cur) > 0 {
			cur = append(cur, float64(v))
		}
	}
	if len(cur) > 0 {
		runs = append(runs, cur)
	}
	for _, r := range runs {
		// Trailing zeros of a run belong to the gap.
		for len(r) > 0 && r[len(r)-1] == 0 {
			r = r[:len(r)-1]
		}
		lens = append(lens, len(r))
		freqs = append(freqs, tonetest.Dominant(r, rate, 100, 4000))
	}
	return lens, freqs, peak
}

// TestSoundsAreDistinct plays every sound and recognises it from the
// samples alone: the number of beeps, their pitch and the total length.
func TestSoundsAreDistinct(t *testing.T) {
	out := &memOutput{rate: 48000, channels: 1}
	cfg := DefaultConfig()
	cfg.Volume = 50
	b := NewWithOutput(cfg, nil, out)
	defer b.Close()
	want := map[Sound][]float64{
		Ack:      {1760},
		Saved:    {880, 1320},
		Uploaded: {1047, 1319, 1568},
		// Fault is one falling tone, checked part by part below.
	}
	seen := map[string]Sound{}
	for _, s := range Sounds() {
		if err := b.PlayWait(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		all := out.played()
		x := all[len(all)-1]
		if n := tone.Frames(s.Segments(), 48000); len(x) != n {
			t.Errorf("%v: %d samples, want %d", s, len(x), n)
		}
		lens, freqs, peak := analyse(x, 48000)
		if want := 0.5 * math.MaxInt16; math.Abs(float64(peak)-want) > want*0.01 {
			t.Errorf("%v at volume 50: peak %d, want %.0f", s, peak, want)
		}
		if s == Fault {
			// 440, 330, 220 Hz back to back: one run, its pitch falls.
			if len(lens) != 1 {
				t.Fatalf("fault: %d beeps, want 1 falling tone", len(lens))
			}
			for i, f := range []float64{440, 330, 220} {
				seg := x[i*14400+1000 : (i+1)*14400-1000]
				_, fr, _ := analyse(seg, 48000)
				if math.Abs(fr[0]-f) > f*0.01 {
					t.Errorf("fault part %d measures %v Hz, want %v", i, fr[0], f)
				}
			}
		} else {
			if len(freqs) != len(want[s]) {
				t.Fatalf("%v: %d beeps %v, want %d", s, len(freqs), freqs, len(want[s]))
			}
			for i, f := range want[s] {
				if math.Abs(freqs[i]-f) > f*0.01 {
					t.Errorf("%v beep %d measures %v Hz, want %v", s, i, freqs[i], f)
				}
				if segLen := int(s.Segments()[2*i].Dur.Seconds() * 48000); lens[i] < segLen-2 || lens[i] > segLen {
					t.Errorf("%v beep %d lasts %d frames, want %d", s, i, lens[i], segLen)
				}
			}
		}
		key := fmt.Sprint(len(lens), freqs)
		if other, dup := seen[key]; dup {
			t.Errorf("%v sounds like %v", s, other)
		}
		seen[key] = s
	}
}

func TestPlayNeverBlocks(t *testing.T) {
	out := &memOutput{rate: 44100, channels: 2, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	b := NewWithOutput(DefaultConfig(), nil, out)
	b.Play(Ack)
	<-out.entered
	// The device hangs in Open; a burst of presses still returns at once
	// (this would deadlock otherwise), and the surplus is dropped.
	for i := 0; i < 20; i++ {
		b.Play(Ack)
	}
	close(out.gate)
	b.Play(Saved) // may be dropped or played: the queue decides
	if err := b.PlayWait(context.Background(), Uploaded); err != nil {
		t.Fatal(err)
	}
	b.Close()
	n := len(out.played())
	// 1 taken by the worker + queueLen queued + PlayWait, maybe Saved.
	if n < 2 || n > queueLen+3 {
		t.Errorf("%d sounds played after a burst of 20, want between 2 and %d", n, queueLen+3)
	}
	// After Close, Play is a no-op and does not block.
	b.Play(Ack)
}

func TestMissingDeviceLoggedOnceAndRetried(t *testing.T) {
	out := &memOutput{rate: 48000, channels: 1, openErr: errors.New("no USB sound card")}
	lg := &logRec{}
	b := NewWithOutput(DefaultConfig(), lg, out)
	defer b.Close()
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := b.PlayWait(ctx, Ack); err == nil || !strings.Contains(err.Error(), "no USB sound card") {
			t.Fatalf("PlayWait without a device = %v", err)
		}
	}
	if got := lg.get(); len(got) != 1 || !strings.Contains(got[0], "skipped until") || !strings.Contains(got[0], "no USB sound card") {
		t.Fatalf("log after 3 failures = %q, want one line", got)
	}
	out.setErr(nil)
	if err := b.PlayWait(ctx, Ack); err != nil {
		t.Fatalf("device back: %v", err)
	}
	out.setErr(errors.New("gone again"))
	_ = b.PlayWait(ctx, Ack)
	_ = b.PlayWait(ctx, Ack)
	got := lg.get()
	if len(got) != 3 || !strings.Contains(got[1], "back") || !strings.Contains(got[2], "gone again") {
		t.Errorf("log = %q, want: missing, back, missing", got)
	}
	if len(out.played()) != 1 {
		t.Errorf("%d sounds played, want 1", len(out.played()))
	}
}

func TestDisabled(t *testing.T) {
	out := &memOutput{rate: 48000, channels: 1}
	cfg := DefaultConfig()
	cfg.Enable = false
	b := NewWithOutput(cfg, nil, out)
	b.Play(Ack)
	if err := b.PlayWait(context.Background(), Ack); !errors.Is(err, ErrDisabled) {
		t.Errorf("PlayWait disabled = %v", err)
	}
	b.Close()
	if len(out.played()) != 0 {
		t.Error("a disabled beeper played")
	}
}

func TestConfigValidateNamesField(t *testing.T) {
	for _, c := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Volume = 101 }, "beeper.volume"},
		{func(c *Config) { c.Volume = -1 }, "beeper.volume"},
		{func(c *Config) { c.Rate = 22050 }, "beeper.rate"},
		{func(c *Config) { c.Device = "a\nb" }, "beeper.device"},
	} {
		cfg := DefaultConfig()
		c.mod(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate = %v, want an error naming %s", err, c.want)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
}

// TestConfigValidateEveryProblem: one run names every field at fault.
func TestConfigValidateEveryProblem(t *testing.T) {
	cfg := Config{Volume: 101, Rate: 22050, Device: "a\nb"}
	err := cfg.Validate()
	for _, f := range []string{"beeper.volume: ", "beeper.rate: ", "beeper.device: "} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("Validate = %v, want a line for %s", err, f)
		}
	}
}

func TestParseSound(t *testing.T) {
	for _, s := range Sounds() {
		got, err := ParseSound(s.String())
		if err != nil || got != s {
			t.Errorf("ParseSound(%q) = %v, %v", s.String(), got, err)
		}
	}
	if _, err := ParseSound("moo"); err == nil || !strings.Contains(err.Error(), `"moo"`) {
		t.Errorf("ParseSound(moo) = %v", err)
	}
}

func TestNilBeeper(t *testing.T) {
	var b *Beeper
	b.Play(Ack)
	if err := b.Close(); err != nil {
		t.Error(err)
	}
}

// BenchmarkPlayWhileBusy measures what a press pays for its beep while
// the device is busy with another sound: a queue attempt, never the sound.
func BenchmarkPlayWhileBusy(b *testing.B) {
	out := &memOutput{rate: 48000, channels: 2, gate: make(chan struct{})}
	bp := NewWithOutput(DefaultConfig(), nil, out)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bp.Play(Ack)
	}
	b.StopTimer()
	reportAckFraction(b)
	close(out.gate)
	bp.Close()
}

// BenchmarkRenderAck measures rendering the ack beep at 48 kHz stereo,
// the work done before the first sample reaches the device.
func BenchmarkRenderAck(b *testing.B) {
	for i := 0; i < b.N; i++ {
		tone.Render(Ack.Segments(), 48000, 2, 0.7)
	}
	b.StopTimer()
	reportAckFraction(b)
}

// reportAckFraction adds the time per operation as a fraction of the ack
// sound's own length, the figure make bench-feedback prints.
func reportAckFraction(b *testing.B) {
	var ack time.Duration
	for _, seg := range Ack.Segments() {
		ack += seg.Dur
	}
	b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(ack), "ack-lengths/op")
}

// TestAckProfileCounts: the acknowledgement of the profile at position n,
// played on the fake sound device, is n short high beeps, recognised from
// the samples; none sounds like another sound or another count.
func TestAckProfileCounts(t *testing.T) {
	out := &memOutput{rate: 48000, channels: 1}
	b := NewWithOutput(DefaultConfig(), nil, out)
	defer b.Close()
	seen := map[string]Sound{}
	for _, s := range Sounds() {
		b.PlayWait(context.Background(), s)
		all := out.played()
		lens, freqs, _ := analyse(all[len(all)-1], 48000)
		seen[fmt.Sprint(len(lens), freqs)] = s
	}
	for n := 1; n <= MaxAckCount; n++ {
		s := AckProfile(n)
		if err := b.PlayWait(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		all := out.played()
		lens, freqs, _ := analyse(all[len(all)-1], 48000)
		if len(lens) != n {
			t.Fatalf("%v: %d beeps, want %d", s, len(lens), n)
		}
		for i := range lens {
			if math.Abs(freqs[i]-2093) > 2093*0.01 || lens[i] > 60*48 {
				t.Errorf("%v beep %d: %v Hz for %d frames, want a short 2093 Hz beep", s, i, freqs[i], lens[i])
			}
		}
		key := fmt.Sprint(len(lens), freqs)
		if other, dup := seen[key]; dup {
			t.Errorf("%v sounds like %v", s, other)
		}
		seen[key] = s
		if s.String() != fmt.Sprintf("ack-%d", n) {
			t.Errorf("AckProfile(%d) is called %q", n, s)
		}
	}
	if AckProfile(0) != Ack || AckProfile(MaxAckCount+1) != Ack {
		t.Error("a count outside 1..MaxAckCount is not the plain ack")
	}
}

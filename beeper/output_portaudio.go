//go:build portaudio

package beeper

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gordonklaus/portaudio"
)

// paOutput plays through portaudio, for desktop and VM hosts where a sound
// server owns the card. It needs cgo and libportaudio, so it is never in
// the image.
type paOutput struct{ cfg Config }

func defaultOutput(cfg Config) Output { return paOutput{cfg} }

func (o paOutput) Open() (Stream, error) {
	if err := portaudio.Initialize(); err != nil {
		return nil, fmt.Errorf("portaudio: %w", err)
	}
	st, err := o.open()
	if err != nil {
		portaudio.Terminate()
		return nil, err
	}
	return st, nil
}

func (o paOutput) device() (*portaudio.DeviceInfo, error) {
	if o.cfg.Device == "" {
		return portaudio.DefaultOutputDevice()
	}
	devs, err := portaudio.Devices()
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		if d.MaxOutputChannels > 0 && strings.Contains(d.Name, o.cfg.Device) {
			return d, nil
		}
	}
	return nil, fmt.Errorf("no portaudio output device named like %q (beeper.device)", o.cfg.Device)
}

func (o paOutput) open() (*paStream, error) {
	dev, err := o.device()
	if err != nil {
		return nil, fmt.Errorf("portaudio: %w", err)
	}
	rates := []float64{48000, 44100}
	if o.cfg.Rate != 0 {
		rates = []float64{float64(o.cfg.Rate)}
	}
	s := &paStream{}
	p := portaudio.HighLatencyParameters(nil, dev)
	p.Output.Channels = min(2, dev.MaxOutputChannels)
	for _, r := range rates {
		p.SampleRate = r
		if portaudio.IsFormatSupported(p, &s.buf) == nil {
			break
		}
	}
	s.rate, s.channels = int(p.SampleRate), p.Output.Channels
	// The stream reads the slice that s.buf holds at each Write.
	if s.stream, err = portaudio.OpenStream(p, &s.buf); err != nil {
		return nil, fmt.Errorf("portaudio: open %s: %w", dev.Name, err)
	}
	if err := s.stream.Start(); err != nil {
		s.stream.Close()
		return nil, fmt.Errorf("portaudio: start %s: %w", dev.Name, err)
	}
	return s, nil
}

type paStream struct {
	stream         *portaudio.Stream
	buf            []int16
	rate, channels int
}

func (s *paStream) Rate() int     { return s.rate }
func (s *paStream) Channels() int { return s.channels }

func (s *paStream) Write(samples []int16) error {
	s.buf = samples
	err := s.stream.Write()
	s.buf = nil
	// An underflow between chunks is a short gap, not a failure.
	if err != nil && !errors.Is(err, portaudio.OutputUnderflowed) {
		return fmt.Errorf("portaudio: write: %w", err)
	}
	return nil
}

// Drain stops the stream, which plays what is queued first.
func (s *paStream) Drain() error { return s.stream.Stop() }

func (s *paStream) Close() error {
	err := s.stream.Close()
	if terr := portaudio.Terminate(); err == nil {
		err = terr
	}
	return err
}

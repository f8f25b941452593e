//go:build !portaudio

package beeper

import (
	"github.com/presscap/presscap/beeper/alsa"
)

// alsaOutput opens the configured ALSA device anew for every sound, so a
// speaker that was unplugged and plugged back (maybe as another card
// number) is found again.
type alsaOutput struct {
	cfg      Config
	procRoot string
	devRoot  string
	sys      alsa.Sys
}

func defaultOutput(cfg Config) Output {
	return &alsaOutput{cfg: cfg, procRoot: "/proc", devRoot: "/dev", sys: alsa.Kernel{}}
}

// NewALSAOutput returns the ALSA output with other /proc and /dev roots and
// kernel interface, for tests.
func NewALSAOutput(cfg Config, procRoot, devRoot string, sys alsa.Sys) Output {
	return &alsaOutput{cfg: cfg, procRoot: procRoot, devRoot: devRoot, sys: sys}
}

func (o *alsaOutput) Open() (Stream, error) {
	path, err := alsa.Locate(o.cfg.Device, o.procRoot, o.devRoot)
	if err != nil {
		return nil, err
	}
	want := alsa.Want{Rates: []int{48000, 44100}, Channels: []int{1, 2}}
	if o.cfg.Rate != 0 {
		want.Rates = []int{o.cfg.Rate}
	}
	return alsa.Open(o.sys, path, want)
}

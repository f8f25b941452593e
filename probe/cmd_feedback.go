package main

import (
	"context"
	"fmt"
	"time"

	"github.com/presscap/presscap/beeper"
	"github.com/presscap/presscap/leds"
)

// runBeep plays one sound so that an installer can test the speaker.
func runBeep(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("beep", e)
	cfg := beeper.DefaultConfig()
	name := fs.String("sound", "ack", "sound to play: ack, saved, uploaded or fault")
	fs.StringVar(&cfg.Device, "device", cfg.Device, `sound device: "" (first USB card), card id, hw:C[,D] or /dev/snd/pcmCxDyp`)
	fs.IntVar(&cfg.Volume, "volume", cfg.Volume, "volume in percent")
	fs.IntVar(&cfg.Rate, "rate", cfg.Rate, "sample rate (0: 48000, else 44100)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	s, err := beeper.ParseSound(*name)
	if err != nil {
		return fmt.Errorf("beep: -sound: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("beep: %w", err)
	}
	// No logger: PlayWait returns the device's error, which main prints
	// once; the beeper's log line would say it a second time.
	b := beeper.New(cfg, nil)
	defer b.Close()
	if err := b.PlayWait(ctx, s); err != nil {
		return fmt.Errorf("beep: %w", err)
	}
	fmt.Fprintf(e.stdout, "played %v\n", s)
	return nil
}

// runLED shows a state's pattern for a while, or lists the patterns.
func runLED(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("led", e)
	cfg := leds.DefaultConfig()
	name := fs.String("state", "", "state to show (empty: list the states and their patterns)")
	dur := fs.Duration("for", 6*time.Second, "how long to show it")
	fs.StringVar(&cfg.Driver, "driver", cfg.Driver, "LED driver: sysfs, gpio or none")
	fs.StringVar(&cfg.SysfsRoot, "sysfs-root", cfg.SysfsRoot, "directory of sysfs LEDs")
	fs.StringVar(&cfg.SysfsName, "sysfs-name", cfg.SysfsName, "sysfs LED name (empty: ACT, then led0)")
	fs.StringVar(&cfg.GPIOChip, "gpio-chip", cfg.GPIOChip, "GPIO chip name or label (empty: the first)")
	fs.StringVar(&cfg.GPIOLine, "gpio-line", cfg.GPIOLine, "GPIO line name or number")
	fs.BoolVar(&cfg.ActiveLow, "active-low", cfg.ActiveLow, "the LED lights when the line is low")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *name == "" {
		for _, s := range leds.States() {
			fmt.Fprintf(e.stdout, "%-17s %s\n", s, leds.PatternOf(s).Say)
		}
		return nil
	}
	s, err := leds.ParseState(*name)
	if err != nil {
		return fmt.Errorf("led: -state: %w", err)
	}
	l, err := leds.New(cfg)
	if err != nil {
		return fmt.Errorf("led: %w", err)
	}
	if leds.PatternOf(s).Once {
		l.Flash(s)
	} else {
		l.Set(s)
	}
	fmt.Fprintf(e.stdout, "showing %v for %v: %s\n", s, *dur, leds.PatternOf(s).Say)
	t := time.NewTimer(*dur)
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	t.Stop()
	lerr := l.Err()
	if err := l.Close(); lerr == nil {
		lerr = err
	}
	if lerr != nil {
		return fmt.Errorf("led: %w", lerr)
	}
	return nil
}

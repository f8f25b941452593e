//go:build linux

package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/presscap/presscap/leds"
)

// gpioLevel reads line 0 of the first chip as the kernel's debugfs shows
// it: an observer independent of the process that drives the line.
func gpioLevel() (level, consumer string, err error) {
	b, err := os.ReadFile("/sys/kernel/debug/gpio")
	if err != nil {
		return "", "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "gpio-0 ") {
			continue
		}
		if i, j := strings.Index(l, "|"), strings.Index(l, ")"); i >= 0 && j > i {
			consumer = strings.TrimSpace(l[i+1 : j])
		}
		f := strings.Fields(l[strings.Index(l, ")")+1:])
		if len(f) >= 2 && f[0] == "out" {
			return f[1], consumer, nil
		}
		return "not-out", consumer, nil
	}
	return "", "", fmt.Errorf("no gpio-0 in /sys/kernel/debug/gpio:\n%s", b)
}

var debugfsMounted bool

// gpioStep shows state on line 0 of the first GPIO chip through periph's
// gpioioctl driver for d, sampling the line every 2 ms, and prints the
// line's changes as +ms (lit) / -ms.
func gpioStep(state string, flash, activeLow bool, d time.Duration) error {
	if !debugfsMounted {
		os.MkdirAll("/sys/kernel/debug", 0o755)
		if err := unix.Mount("debugfs", "/sys/kernel/debug", "debugfs", 0, ""); err != nil {
			return fmt.Errorf("mount debugfs: %w", err)
		}
		debugfsMounted = true
	}
	s, err := leds.ParseState(state)
	if err != nil {
		return err
	}
	l, err := leds.New(leds.Config{Driver: leds.DriverGPIO, GPIOLine: "0", ActiveLow: activeLow})
	if err != nil {
		return err
	}
	lit := "hi"
	if activeLow {
		lit = "lo"
	}
	start := time.Now()
	// A flash comes 200 ms into Recording, while the sampler runs.
	flashed := !flash
	if flash {
		l.Set(leds.Recording)
	} else {
		l.Set(s)
	}
	var changes []ledEvent
	consumer := ""
	for time.Since(start) < d {
		lv, c, err := gpioLevel()
		if err != nil && len(changes) == 0 && time.Since(start) < time.Second {
			// The pattern goroutine has not requested the line yet.
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			return err
		}
		consumer = c
		on := lv == lit
		if len(changes) == 0 && !on && time.Since(start) < time.Second {
			// Still dark from the last step: every pattern starts lit.
			time.Sleep(time.Millisecond)
			continue
		}
		if lv != "hi" && lv != "lo" {
			return fmt.Errorf("line 0 is %q, want an output", lv)
		}
		if n := len(changes); n == 0 || changes[n-1].on != on {
			changes = append(changes, ledEvent{time.Since(start), on})
		}
		if !flashed && time.Since(start)-changes[0].at >= 200*time.Millisecond {
			l.Flash(s)
			flashed = true
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := l.Close(); err != nil {
		return err
	}
	after, _, err := gpioLevel()
	if err != nil {
		return err
	}
	fmt.Printf("GPIOPATTERN %s active-low=%v consumer=%q after-close=%s %s\n", state, activeLow, consumer, after, patternString(changes))
	return nil
}

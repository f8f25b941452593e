package leds

import (
	"fmt"
	"strconv"
	"strings"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/host/v3/gpioioctl"
)

// GPIO is an LED on a GPIO line.
type GPIO struct {
	pin       gpio.PinOut
	activeLow bool
}

// NewGPIO drives an LED on pin (a gpioioctl line on the device, a
// gpiotest.Pin in tests).
func NewGPIO(pin gpio.PinOut, activeLow bool) *GPIO {
	return &GPIO{pin: pin, activeLow: activeLow}
}

// Set drives the line.
func (g *GPIO) Set(on bool) error {
	if err := g.pin.Out(gpio.Level(on != g.activeLow)); err != nil {
		return fmt.Errorf("led %s: %w", g.pin, err)
	}
	return nil
}

// Close turns the LED off.
func (g *GPIO) Close() error { return g.Set(false) }

// openGPIO finds the configured line through periph's /dev/gpiochip*
// driver, which works on the Pi 3, 4 and 5 alike.
func openGPIO(cfg Config) (Light, error) {
	if _, err := driverreg.Init(); err != nil {
		return nil, fmt.Errorf("leds: gpio drivers: %w", err)
	}
	chips := gpioioctl.Chips
	if len(chips) == 0 {
		return nil, notFound("no /dev/gpiochip* (leds.driver gpio)", fmt.Errorf("no GPIO chips"))
	}
	var chip *gpioioctl.GPIOChip
	var names []string
	for _, c := range chips {
		names = append(names, c.Name()+"/"+c.Label())
		if cfg.GPIOChip == "" || c.Name() == cfg.GPIOChip || c.Label() == cfg.GPIOChip {
			chip = c
			break
		}
	}
	if chip == nil {
		return nil, notFound(fmt.Sprintf("leds.gpio_chip %q is none of %s", cfg.GPIOChip, strings.Join(names, ", ")), fmt.Errorf("no such chip"))
	}
	line := chip.ByName(cfg.GPIOLine)
	if line == nil {
		if n, err := strconv.Atoi(cfg.GPIOLine); err == nil && n >= 0 && n < chip.LineCount() {
			line = chip.ByNumber(n)
		}
	}
	if line == nil {
		return nil, notFound(fmt.Sprintf("leds.gpio_line %q on %s", cfg.GPIOLine, chip.Name()), fmt.Errorf("no such line"))
	}
	return NewGPIO(line, cfg.ActiveLow), nil
}

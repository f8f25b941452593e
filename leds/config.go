// Package leds shows the probe's state on one LED, with one blink pattern
// per state that a customer can describe over the phone ("it blinks three
// times, then pauses"). The LED is a GPIO line (/dev/gpiochip*) or a sysfs
// LED such as the Raspberry Pi's green ACT LED.
//
// This file holds the package's configuration section, which probe/config
// embeds under the JSON key "leds".
package leds

import (
	"strings"

	"github.com/presscap/presscap/internal/field"
)

// The LED drivers.
const (
	DriverSysfs = "sysfs" // /sys/class/leds/<name>
	DriverGPIO  = "gpio"  // a line of /dev/gpiochip*
	DriverNone  = "none"  // no LED: states are only remembered
)

// Config is this package's section of the probe configuration.
type Config struct {
	// Driver is "sysfs", "gpio" or "none".
	Driver string `json:"driver"`
	// SysfsName is the LED under SysfsRoot. Empty tries "ACT" (current
	// Raspberry Pi kernels) and then "led0" (older ones).
	SysfsName string `json:"sysfs_name"`
	// SysfsRoot is the directory of sysfs LEDs, normally /sys/class/leds.
	SysfsRoot string `json:"sysfs_root"`
	// GPIOChip names the chip ("gpiochip0", or its label such as
	// "pinctrl-bcm2711"); empty means the first chip in periph's order
	// (the Pi's pin controller first).
	GPIOChip string `json:"gpio_chip"`
	// GPIOLine is the line: its name on the chip ("GPIO17") or its number
	// on the chip ("17").
	GPIOLine string `json:"gpio_line"`
	// ActiveLow means the LED is lit when the line (or brightness) is low.
	ActiveLow bool `json:"active_low"`
}

// DefaultConfig returns the configuration used when the file omits the
// section: the Pi's own ACT LED.
func DefaultConfig() Config {
	return Config{Driver: DriverSysfs, SysfsRoot: "/sys/class/leds"}
}

// Validate reports every problem, each naming its JSON field, as
// field.Errors.
func (c Config) Validate() error {
	var es field.Errors
	switch c.Driver {
	case DriverSysfs:
		if c.SysfsRoot == "" {
			es.Add("leds.sysfs_root", "empty (the default is /sys/class/leds)")
		}
		if strings.ContainsAny(c.SysfsName, "/\x00") || c.SysfsName == "." || c.SysfsName == ".." {
			es.Add("leds.sysfs_name", "%q is not an LED name", c.SysfsName)
		}
	case DriverGPIO:
		if c.GPIOLine == "" {
			es.Add("leds.gpio_line", "required with leds.driver %q (a line name such as \"GPIO17\" or a number)", c.Driver)
		}
	case DriverNone:
	default:
		es.Add("leds.driver", "%q is not one of %q, %q, %q", c.Driver, DriverSysfs, DriverGPIO, DriverNone)
	}
	return es.Err()
}

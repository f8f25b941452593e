package leds

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Sysfs is an LED of the kernel's LED class (/sys/class/leds/<name>).
type Sysfs struct {
	dir       string
	on, off   []byte
	trigger   string // the trigger before we set "none", restored by Close
	activeLow bool
}

// sysfsDefaults are tried in order when no name is configured: the Pi's
// green LED is "ACT" on current kernels and "led0" on older ones.
var sysfsDefaults = []string{"ACT", "led0"}

// OpenSysfs takes over the LED root/name (name "" tries ACT, then led0):
// it sets the trigger to "none" so that the kernel stops blinking it for
// SD card activity, and reads max_brightness.
func OpenSysfs(root, name string, activeLow bool) (*Sysfs, error) {
	names := []string{name}
	if name == "" {
		names = sysfsDefaults
	}
	var dir string
	for _, n := range names {
		d := filepath.Join(root, n)
		if _, err := os.Stat(filepath.Join(d, "brightness")); err == nil {
			dir = d
			break
		}
	}
	if dir == "" {
		return nil, notFound(fmt.Sprintf("no %s under %s (leds.sysfs_root, leds.sysfs_name)", strings.Join(names, " or "), root), os.ErrNotExist)
	}
	s := &Sysfs{dir: dir, activeLow: activeLow}
	max := 1
	if b, err := os.ReadFile(filepath.Join(dir, "max_brightness")); err == nil {
		v, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%s/max_brightness: bad value %q", dir, strings.TrimSpace(string(b)))
		}
		max = v
	}
	s.on, s.off = []byte(strconv.Itoa(max)), []byte("0")
	if activeLow {
		s.on, s.off = s.off, s.on
	}
	if b, err := os.ReadFile(filepath.Join(dir, "trigger")); err == nil {
		s.trigger = currentTrigger(string(b))
		if err := s.writeFile("trigger", []byte("none")); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s/trigger: %w", dir, err)
	}
	return s, nil
}

// currentTrigger picks the bracketed entry of a trigger file:
// "none rc-feedback [mmc0] timer" -> "mmc0".
func currentTrigger(list string) string {
	for _, f := range strings.Fields(list) {
		if strings.HasPrefix(f, "[") && strings.HasSuffix(f, "]") {
			return f[1 : len(f)-1]
		}
	}
	return ""
}

// Dir returns the LED's sysfs directory.
func (s *Sysfs) Dir() string { return s.dir }

func (s *Sysfs) writeFile(name string, b []byte) error {
	// O_TRUNC is not allowed on sysfs attributes, and a plain file in a
	// test tree must not keep stale bytes: write then truncate to size.
	f, err := os.OpenFile(filepath.Join(s.dir, name), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("led: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		if fi, serr := f.Stat(); serr == nil && fi.Mode().IsRegular() {
			err = f.Truncate(int64(len(b)))
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("led: write %s/%s: %w", s.dir, name, err)
	}
	return nil
}

// Set writes the brightness.
func (s *Sysfs) Set(on bool) error {
	if on {
		return s.writeFile("brightness", s.on)
	}
	return s.writeFile("brightness", s.off)
}

// Close turns the LED off and restores its previous trigger.
func (s *Sysfs) Close() error {
	err := s.Set(false)
	if s.trigger != "" && s.trigger != "none" {
		if terr := s.writeFile("trigger", []byte(s.trigger)); err == nil {
			err = terr
		}
	}
	return err
}

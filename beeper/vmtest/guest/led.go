//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/presscap/presscap/internal/testing/uinput"
	"github.com/presscap/presscap/leds"
)

// A real LED class device without LED hardware: a uinput keyboard with a
// Caps Lock LED makes the kernel's input-leds create
// /sys/class/leds/inputN::capslock, and every change of that LED comes back
// to the uinput file as an EV_LED event with the kernel's timestamp.

const (
	evLED    = uinput.EvLed
	ledCapsL = 0x01
)

type ledEvent struct {
	at time.Duration // kernel monotonic time
	on bool
}

// patternString is how long each change lasted, "+507 -520" (lit, dark,
// in ms), as the host test reads it; the last change has no end yet.
func patternString(evs []ledEvent) string {
	var parts []string
	for i := 0; i+1 < len(evs); i++ {
		sign := "-"
		if evs[i].on {
			sign = "+"
		}
		parts = append(parts, fmt.Sprintf("%s%d", sign, (evs[i+1].at-evs[i].at).Milliseconds()))
	}
	return strings.Join(parts, " ")
}

type fakeLED struct {
	f      *os.File
	name   string
	events chan ledEvent
}

func newFakeLED() (*fakeLED, error) {
	d, err := uinput.Create(uinput.Setup{Name: "presscap test LED", Bus: uinput.BusVirtual, Leds: []uint16{ledCapsL}})
	if err != nil {
		return nil, err
	}
	f := d.File
	var name string
	for i := 0; i < 100 && name == ""; i++ {
		// Not the emulated PS/2 keyboard's LED: ours, by the device's name.
		m, _ := filepath.Glob("/sys/class/leds/input*::capslock")
		for _, p := range m {
			if b, _ := os.ReadFile(filepath.Join(p, "device", "name")); strings.TrimSpace(string(b)) == "presscap test LED" {
				name = filepath.Base(p)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if name == "" {
		return nil, fmt.Errorf("no /sys/class/leds/input*::capslock")
	}
	l := &fakeLED{f: f, name: name, events: make(chan ledEvent, 1000)}
	go l.read()
	return l, nil
}

func (l *fakeLED) read() {
	buf := make([]byte, 24) // struct input_event on 64-bit: timeval, type, code, value
	for {
		if _, err := l.f.Read(buf); err != nil {
			fmt.Printf("LED read: %v\n", err)
			return
		}
		typ, code := binary.LittleEndian.Uint16(buf[16:]), binary.LittleEndian.Uint16(buf[18:])
		if typ != evLED || code != ledCapsL {
			continue
		}
		sec, usec := int64(binary.LittleEndian.Uint64(buf[0:])), int64(binary.LittleEndian.Uint64(buf[8:]))
		l.events <- ledEvent{time.Duration(sec)*time.Second + time.Duration(usec)*time.Microsecond, binary.LittleEndian.Uint32(buf[20:]) != 0}
	}
}

func readTrigger(name string) string {
	b, _ := os.ReadFile(filepath.Join("/sys/class/leds", name, "trigger"))
	for _, f := range strings.Fields(string(b)) {
		if strings.HasPrefix(f, "[") {
			return f
		}
	}
	return "?"
}

var theLED *fakeLED

// ledStep shows state (flash: as a flash over recording) for d and prints
// the LED's changes as +ms/-ms durations measured by the kernel.
func ledStep(state string, flash bool, d time.Duration) error {
	if theLED == nil {
		l, err := newFakeLED()
		if err != nil {
			return err
		}
		theLED = l
		fmt.Printf("LED %s trigger before %s\n", l.name, readTrigger(l.name))
	}
	s, err := leds.ParseState(state)
	if err != nil {
		return err
	}
	cfg := leds.DefaultConfig()
	cfg.SysfsName = theLED.name
	l, err := leds.New(cfg)
	if err != nil {
		return err
	}
	trigger := readTrigger(theLED.name)
	// Drain what opening did (trigger none may switch the LED off).
	time.Sleep(100 * time.Millisecond)
	for len(theLED.events) > 0 {
		<-theLED.events
	}
	if flash {
		l.Set(leds.Recording)
		time.Sleep(200 * time.Millisecond)
		l.Flash(s)
	} else {
		l.Set(s)
	}
	time.Sleep(d)
	err = l.Close()
	if err == nil {
		err = l.Err()
	}
	if err != nil {
		return err
	}
	time.Sleep(50 * time.Millisecond)
	var evs []ledEvent
	for len(theLED.events) > 0 {
		evs = append(evs, <-theLED.events)
	}
	fmt.Printf("LEDPATTERN %s trigger-while-shown=%s trigger-after=%s %s\n", state, trigger, readTrigger(theLED.name), patternString(evs))
	return nil
}

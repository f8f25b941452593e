//go:build linux

// Command vmcheck runs the probe's trigger watcher against the kernel's
// real input layer, in the beeper's VM test (beeper/vmtest), which boots
// Debian's kernel with uinput loaded and runs it from its /init: uinput
// makes an R400 as Linux sees one (046d:c52d "Logitech USB Receiver", two
// event devices with the R400's keys, autorepeat on) and a Logitech
// keyboard (046d:c31c, every key); the watcher runs with the device
// entries and profiles of the configuration file named by the argument
// (the image's). It prints one line per check, "TRIGGER-CHECK NAME ok" or
// "TRIGGER-CHECK NAME FAIL why", which the host test reads, and exits 1 if
// one failed.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/presscap/presscap/internal/testing/uinput"
	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/internal/trigger"
)

var failed bool

func check(name string, err error) {
	if err != nil {
		failed = true
		fmt.Printf("TRIGGER-CHECK %s FAIL %v\n", name, err)
		return
	}
	fmt.Printf("TRIGGER-CHECK %s ok\n", name)
}

var r400Keys = []uint16{trigger.KeyEsc, trigger.KeyDot, trigger.KeyF5, trigger.KeyPageUp, trigger.KeyPageDown}

// r400 is the receiver's two interfaces: Linux makes an event device of
// each, both named after the receiver.
func r400() ([2]*uinput.Device, error) {
	var devs [2]*uinput.Device
	for i := range devs {
		d, err := uinput.Create(uinput.Setup{Name: "Logitech USB Receiver", Bus: uinput.BusUSB,
			Vendor: 0x046d, Product: 0xc52d, Ver: 0x0111, Keys: r400Keys, Repeat: true, Scan: true})
		if err != nil {
			return devs, fmt.Errorf("R400 interface %d: %w", i, err)
		}
		devs[i] = d
	}
	return devs, nil
}

func keyboard() (*uinput.Device, error) {
	var keys []uint16
	for k := uint16(1); k < 249; k++ { // KEY_ESC .. KEY_MICMUTE
		keys = append(keys, k)
	}
	return uinput.Create(uinput.Setup{Name: "Logitech USB Keyboard", Bus: uinput.BusUSB,
		Vendor: 0x046d, Product: 0xc31c, Ver: 0x0110, Keys: keys, Leds: []uint16{0, 1, 2}, Repeat: true, Scan: true})
}

// waitFor polls cond; the VM's clock runs on executed instructions, so a
// guest-side timeout does not depend on the host's load.
func waitFor(what string, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// nodeOf finds the event node of the input device with name and product,
// by sysfs, independently of the watcher.
func nodesOf(name string, product uint16) []string {
	var out []string
	m, _ := filepath.Glob("/sys/class/input/event*")
	for _, p := range m {
		n, _ := os.ReadFile(filepath.Join(p, "device", "name"))
		id, _ := os.ReadFile(filepath.Join(p, "device", "id", "product"))
		if strings.TrimSpace(string(n)) == name && strings.TrimSpace(string(id)) == fmt.Sprintf("%04x", product) {
			out = append(out, filepath.Join("/dev/input", filepath.Base(p)))
		}
	}
	slices.Sort(out)
	return out
}

// grabbedByOther tries EVIOCGRAB on path: EBUSY means another reader (the
// watcher) holds it.
func grabbedByOther(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = trigger.Grab(f)
	if errors.Is(err, unix.EBUSY) {
		return true, nil
	}
	return false, err // our grab ends with Close
}

// press waits for the next press; nothing within wait is an error.
func press(presses <-chan trigger.Press, wait time.Duration) (trigger.Press, error) {
	select {
	case p := <-presses:
		return p, nil
	case <-time.After(wait):
		return trigger.Press{}, fmt.Errorf("no press within %v", wait)
	}
}

// drain drops presses a failed check left behind, so that the next
// check fails only for its own reasons.
func drain(presses <-chan trigger.Press) {
	for {
		select {
		case <-presses:
		default:
			return
		}
	}
}

// none checks that no press comes within wait.
func none(presses <-chan trigger.Press, wait time.Duration) error {
	select {
	case p := <-presses:
		return fmt.Errorf("unexpected press of %s from %s", trigger.KeyName(p.Key), p.Device)
	case <-time.After(wait):
		return nil
	}
}

func main() {
	err := run()
	if err != nil {
		check("run", err)
	}
	if failed {
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) != 2 {
		return errors.New("usage: vmcheck CONFIG")
	}
	c, _, err := config.LoadLayers([]string{os.Args[1]})
	if err != nil {
		return err
	}
	t := c.Trigger
	if len(t.Profiles) == 0 {
		return fmt.Errorf("%s has no trigger.profiles", os.Args[1])
	}
	kbd, err := keyboard()
	if err != nil {
		return err
	}
	defer kbd.Destroy()
	devs, err := r400()
	if err != nil {
		return err
	}

	w := &trigger.Watcher{Dir: "/dev/input", Rescan: t.Rescan.D(), Grab: t.Grab, Matches: t.Matches(),
		Logf: func(f string, a ...any) { fmt.Printf("TRIGGER-LOG "+f+"\n", a...) }}
	ctx, cancel := context.WithCancel(context.Background())
	presses := make(chan trigger.Press, 64)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, presses) }()
	defer func() { cancel(); <-done }()

	twoR400 := func() bool {
		ds := w.Devices()
		return len(ds) == 2 && ds[0].Product == 0xc52d && ds[1].Product == 0xc52d
	}
	check("takes-r400", waitFor("two R400 event devices taken", 20*time.Second, twoR400))
	fmt.Printf("TRIGGER devices %v\n", w.Devices())

	// The kernel says who holds what: the R400's nodes are grabbed, the
	// keyboard's is free.
	check("grab", func() error {
		r, k := nodesOf("Logitech USB Receiver", 0xc52d), nodesOf("Logitech USB Keyboard", 0xc31c)
		if len(r) != 2 || len(k) != 1 {
			return fmt.Errorf("nodes: R400 %v, keyboard %v", r, k)
		}
		for _, p := range r {
			if g, err := grabbedByOther(p); err != nil || !g {
				return fmt.Errorf("R400 %s not grabbed by the watcher (%v)", p, err)
			}
		}
		if g, err := grabbedByOther(k[0]); err != nil || g {
			return fmt.Errorf("keyboard %s grabbed by the watcher (%v)", k[0], err)
		}
		return nil
	}())

	// The keyboard's Page Up presses nothing; the kernel repeats its held
	// keys (the control for "held presses once" below).
	check("keyboard-ignored", func() error {
		f, err := os.OpenFile(nodesOf("Logitech USB Keyboard", 0xc31c)[0], os.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := kbd.Stroke(trigger.KeyPageUp, 700*time.Millisecond); err != nil {
			return err
		}
		if err := none(presses, 500*time.Millisecond); err != nil {
			return err
		}
		buf := make([]byte, 64*trigger.EventSize)
		n, _ := f.Read(buf)
		repeats := 0
		for i := 0; i+trigger.EventSize <= n; i += trigger.EventSize {
			if ev, _ := trigger.DecodeEvent(buf[i:]); ev.Type == trigger.EvKey && ev.Value == 2 {
				repeats++
			}
		}
		fmt.Printf("TRIGGER keyboard held 700 ms: %d autorepeat events\n", repeats)
		if repeats == 0 {
			return errors.New("the kernel sent no autorepeat (value 2) for a held key")
		}
		return nil
	}())

	// Each key of the R400 presses the profile that lists it, from
	// either interface.
	for i, key := range r400Keys {
		name := trigger.KeyName(key)
		drain(presses)
		check("key-"+name, func() error {
			d := devs[i%2]
			if err := d.Stroke(key, 80*time.Millisecond); err != nil {
				return err
			}
			p, err := press(presses, 5*time.Second)
			if err != nil {
				return err
			}
			want := ""
			for _, pr := range t.Profiles {
				if slices.ContainsFunc(pr.Keys, func(k string) bool { c, _ := trigger.KeyCode(k); return c == key }) {
					want = pr.Name
				}
			}
			got := t.ProfileOfKey(p.Key)
			fmt.Printf("TRIGGER press %s on %s: profile %s\n", trigger.KeyName(p.Key), p.Device.Path, got)
			if p.Key != key || got != want || want == "" {
				return fmt.Errorf("pressed %s, got %s for profile %q, want %q", name, trigger.KeyName(p.Key), got, want)
			}
			return none(presses, 300*time.Millisecond)
		}())
	}

	// A key held for a second: the kernel repeats it, one press.
	drain(presses)
	check("held-once", func() error {
		if err := devs[0].Stroke(trigger.KeyPageDown, time.Second); err != nil {
			return err
		}
		if _, err := press(presses, 5*time.Second); err != nil {
			return err
		}
		return none(presses, 500*time.Millisecond)
	}())

	// Pulled out and plugged back while the watcher runs.
	drain(presses)
	check("replug", func() error {
		for _, d := range devs {
			if err := d.Destroy(); err != nil {
				return err
			}
		}
		if err := waitFor("R400 devices let go", 10*time.Second, func() bool { return len(w.Devices()) == 0 }); err != nil {
			return err
		}
		devs, err = r400()
		if err != nil {
			return err
		}
		if err := waitFor("re-plugged R400 taken", 20*time.Second, twoR400); err != nil {
			return err
		}
		if err := devs[1].Stroke(trigger.KeyDot, 80*time.Millisecond); err != nil {
			return err
		}
		p, err := press(presses, 5*time.Second)
		if err != nil {
			return fmt.Errorf("after the re-plug: %w", err)
		}
		if p.Key != trigger.KeyDot {
			return fmt.Errorf("after the re-plug: pressed KEY_DOT, got %s", trigger.KeyName(p.Key))
		}
		return nil
	}())
	for _, d := range devs {
		d.Destroy()
	}
	return nil
}

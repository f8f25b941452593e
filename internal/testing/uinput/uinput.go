//go:build linux

// Package uinput makes virtual input devices through the kernel's
// /dev/uinput, for tests that need real evdev nodes (the VM test's
// presenter, keyboard and Caps Lock LED): raw ioctls, no cgo.
package uinput

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctls of include/uapi/linux/uinput.h (the same numbers on x86_64 and
// arm64).
const (
	uiDevCreate  = 0x5501     // _IO('U', 1)
	uiDevDestroy = 0x5502     // _IO('U', 2)
	uiDevSetup   = 0x405c5503 // _IOW('U', 3, struct uinput_setup): 92 bytes
	uiSetEvBit   = 0x40045564 // _IOW('U', 100, int)
	uiSetKeyBit  = 0x40045565 // _IOW('U', 101, int)
	uiSetMscBit  = 0x40045568 // _IOW('U', 104, int)
	uiSetLedBit  = 0x40045569 // _IOW('U', 105, int)
)

// Event types and codes of include/uapi/linux/input-event-codes.h.
const (
	EvSyn = 0x00
	EvKey = 0x01
	EvMsc = 0x04
	EvLed = 0x11
	EvRep = 0x14

	MscScan    = 0x04
	BusUSB     = 0x03
	BusVirtual = 0x06
)

// Setup is what the device says it is.
type Setup struct {
	Name                      string
	Bus, Vendor, Product, Ver uint16
	Keys                      []uint16 // EV_KEY codes
	Leds                      []uint16 // EV_LED codes
	Repeat                    bool     // EV_REP: the kernel repeats held keys
	Scan                      bool     // EV_MSC MSC_SCAN, as a HID keyboard has
}

// Device is one uinput device; its File reads what the kernel sends back
// to it (EV_LED changes).
type Device struct {
	File *os.File
}

func ioctl(fd uintptr, req, v uintptr) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, req, v); e != 0 {
		return e
	}
	return nil
}

// Create makes the device; its event node appears shortly after.
func Create(s Setup) (*Device, error) {
	f, err := os.OpenFile("/dev/uinput", os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	fd := f.Fd()
	type bit struct {
		req  uintptr
		v    uint16
		name string
	}
	var bits []bit
	add := func(req uintptr, v uint16, name string) { bits = append(bits, bit{req, v, name}) }
	if len(s.Keys) > 0 {
		add(uiSetEvBit, EvKey, "UI_SET_EVBIT(EV_KEY)")
	}
	for _, k := range s.Keys {
		add(uiSetKeyBit, k, fmt.Sprintf("UI_SET_KEYBIT(%d)", k))
	}
	if len(s.Leds) > 0 {
		add(uiSetEvBit, EvLed, "UI_SET_EVBIT(EV_LED)")
	}
	for _, l := range s.Leds {
		add(uiSetLedBit, l, fmt.Sprintf("UI_SET_LEDBIT(%d)", l))
	}
	if s.Repeat {
		add(uiSetEvBit, EvRep, "UI_SET_EVBIT(EV_REP)")
	}
	if s.Scan {
		add(uiSetEvBit, EvMsc, "UI_SET_EVBIT(EV_MSC)")
		add(uiSetMscBit, MscScan, "UI_SET_MSCBIT(MSC_SCAN)")
	}
	for _, b := range bits {
		if err := ioctl(fd, b.req, uintptr(b.v)); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", b.name, err)
		}
	}
	// struct uinput_setup: struct input_id, char name[80], u32 ff_effects_max.
	var setup [92]byte
	bo := binary.NativeEndian
	bo.PutUint16(setup[0:], s.Bus)
	bo.PutUint16(setup[2:], s.Vendor)
	bo.PutUint16(setup[4:], s.Product)
	bo.PutUint16(setup[6:], s.Ver)
	copy(setup[8:8+79], s.Name)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, uiDevSetup, uintptr(unsafe.Pointer(&setup[0]))); e != 0 {
		f.Close()
		return nil, fmt.Errorf("UI_DEV_SETUP: %w", e)
	}
	if err := ioctl(fd, uiDevCreate, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("UI_DEV_CREATE: %w", err)
	}
	return &Device{File: f}, nil
}

// Emit writes one event; a report ends with an EV_SYN event.
func (d *Device) Emit(typ, code uint16, value int32) error {
	var b [24]byte // struct input_event on 64-bit; the kernel stamps the time
	bo := binary.NativeEndian
	bo.PutUint16(b[16:], typ)
	bo.PutUint16(b[18:], code)
	bo.PutUint32(b[20:], uint32(value))
	_, err := d.File.Write(b[:])
	return err
}

// Key sends key code with value (1 down, 0 up, 2 repeat) and a
// SYN_REPORT: evdev wakes readers only at a report's end.
func (d *Device) Key(code uint16, value int32) error {
	if err := d.Emit(EvKey, code, value); err != nil {
		return err
	}
	return d.Emit(EvSyn, 0, 0)
}

// Stroke presses and releases code, held for hold.
func (d *Device) Stroke(code uint16, hold time.Duration) error {
	if err := d.Key(code, 1); err != nil {
		return err
	}
	time.Sleep(hold)
	return d.Key(code, 0)
}

// Destroy removes the device, as pulling it out would; its event node
// goes away.
func (d *Device) Destroy() error {
	err := ioctl(d.File.Fd(), uiDevDestroy, 0)
	if cerr := d.File.Close(); err == nil {
		err = cerr
	}
	return err
}

// Package trigger reads key presses from Linux evdev input devices: it
// watches the input directory for devices coming and going, identifies
// them (USB ids, name, key capabilities), grabs the accepted ones and
// turns key-down events into presses.
package trigger

import (
	"encoding/binary"
	"fmt"
	"time"
)

// EventSize is the size of struct input_event on 64-bit Linux: a 16-byte
// struct timeval, u16 type, u16 code, s32 value.
const EventSize = 24

// Event is one struct input_event.
type Event struct {
	Time  time.Time
	Type  uint16
	Code  uint16
	Value int32
}

// DecodeEvent decodes one input_event in the machine's byte order.
func DecodeEvent(b []byte) (Event, error) {
	if len(b) < EventSize {
		return Event{}, fmt.Errorf("input event: %d bytes, want %d", len(b), EventSize)
	}
	bo := binary.NativeEndian
	sec := int64(bo.Uint64(b[0:]))
	usec := int64(bo.Uint64(b[8:]))
	return Event{
		Time:  time.Unix(sec, usec*1000),
		Type:  bo.Uint16(b[16:]),
		Code:  bo.Uint16(b[18:]),
		Value: int32(bo.Uint32(b[20:])),
	}, nil
}

// AppendEvent appends e encoded as the kernel writes it.
func AppendEvent(b []byte, e Event) []byte {
	bo := binary.NativeEndian
	b = bo.AppendUint64(b, uint64(e.Time.Unix()))
	b = bo.AppendUint64(b, uint64(e.Time.Nanosecond()/1000))
	b = bo.AppendUint16(b, e.Type)
	b = bo.AppendUint16(b, e.Code)
	return bo.AppendUint32(b, uint32(e.Value))
}

// KeyStroke returns the bytes a keyboard sends for one key press at t:
// key down, SYN_REPORT, key up, SYN_REPORT, as evdev delivers them.
func KeyStroke(t time.Time, code uint16) []byte {
	var b []byte
	b = AppendEvent(b, Event{Time: t, Type: EvKey, Code: code, Value: 1})
	b = AppendEvent(b, Event{Time: t, Type: EvSyn})
	up := t.Add(80 * time.Millisecond)
	b = AppendEvent(b, Event{Time: up, Type: EvKey, Code: code, Value: 0})
	return AppendEvent(b, Event{Time: up, Type: EvSyn})
}

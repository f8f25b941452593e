package trigger

import (
	"fmt"
	"strconv"
	"strings"
)

// Linux input event types and key codes (linux/input-event-codes.h) that
// the probe needs by name.
const (
	EvSyn = 0x00
	EvKey = 0x01

	KeyEsc      = 1
	KeyDot      = 52
	KeyF5       = 63
	KeyPageUp   = 104
	KeyPageDown = 109

	// KeyMax is the highest key code (KEY_MAX).
	KeyMax = 0x2ff
)

var keyNames = map[string]uint16{
	"KEY_ESC": 1, "KEY_1": 2, "KEY_2": 3, "KEY_3": 4, "KEY_4": 5, "KEY_5": 6, "KEY_6": 7,
	"KEY_7": 8, "KEY_8": 9, "KEY_9": 10, "KEY_0": 11, "KEY_MINUS": 12, "KEY_EQUAL": 13,
	"KEY_BACKSPACE": 14, "KEY_TAB": 15, "KEY_Q": 16, "KEY_W": 17, "KEY_E": 18, "KEY_R": 19,
	"KEY_T": 20, "KEY_Y": 21, "KEY_U": 22, "KEY_I": 23, "KEY_O": 24, "KEY_P": 25,
	"KEY_ENTER": 28, "KEY_LEFTCTRL": 29, "KEY_A": 30, "KEY_S": 31, "KEY_D": 32, "KEY_F": 33,
	"KEY_G": 34, "KEY_H": 35, "KEY_J": 36, "KEY_K": 37, "KEY_L": 38, "KEY_LEFTSHIFT": 42,
	"KEY_Z": 44, "KEY_X": 45, "KEY_C": 46, "KEY_V": 47, "KEY_B": 48, "KEY_N": 49, "KEY_M": 50,
	"KEY_COMMA": 51, "KEY_DOT": 52, "KEY_SLASH": 53, "KEY_LEFTALT": 56, "KEY_SPACE": 57,
	"KEY_F1": 59, "KEY_F2": 60, "KEY_F3": 61, "KEY_F4": 62, "KEY_F5": 63, "KEY_F6": 64,
	"KEY_F7": 65, "KEY_F8": 66, "KEY_F9": 67, "KEY_F10": 68, "KEY_F11": 87, "KEY_F12": 88,
	"KEY_HOME": 102, "KEY_UP": 103, "KEY_PAGEUP": 104, "KEY_LEFT": 105, "KEY_RIGHT": 106,
	"KEY_END": 107, "KEY_DOWN": 108, "KEY_PAGEDOWN": 109, "KEY_INSERT": 110, "KEY_DELETE": 111,
	"KEY_MUTE": 113, "KEY_VOLUMEDOWN": 114, "KEY_VOLUMEUP": 115, "KEY_POWER": 116,
	"KEY_NEXTSONG": 163, "KEY_PLAYPAUSE": 164, "KEY_PREVIOUSSONG": 165, "KEY_STOPCD": 166,
	"KEY_PRESENTATION": 0x1a9, "BTN_LEFT": 0x110, "BTN_RIGHT": 0x111, "BTN_MIDDLE": 0x112,
}

// KeyCode resolves a key name ("KEY_PAGEUP", case-insensitive, the KEY_
// prefix optional) or a decimal or 0x-hex code.
func KeyCode(name string) (uint16, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	// A number is a code, never a name: "1" is KEY_ESC, not KEY_1.
	if v, err := strconv.ParseUint(strings.ToLower(n), 0, 16); err == nil {
		if v == 0 || v > KeyMax {
			return 0, fmt.Errorf("key %q: code out of range 1..%d", name, KeyMax)
		}
		return uint16(v), nil
	}
	if c, ok := keyNames[n]; ok {
		return c, nil
	}
	if c, ok := keyNames["KEY_"+n]; ok {
		return c, nil
	}
	return 0, fmt.Errorf("key %q: not a known KEY_ name or a code in 1..%d", name, KeyMax)
}

// KeyName returns the name of a key code, or its number.
func KeyName(code uint16) string {
	best := ""
	for n, c := range keyNames {
		if c == code && (best == "" || n < best) {
			best = n
		}
	}
	if best != "" {
		return best
	}
	return strconv.Itoa(int(code))
}

package trigger

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// KeyBits is the EV_KEY capability bitmap (EVIOCGBIT(EV_KEY)): bit n set
// means the device has key n. The kernel fills it as an array of unsigned
// longs; on little-endian machines that is the same as bit n%8 of byte n/8,
// and Has reads it in the machine's word order so it is right on both.
type KeyBits [(KeyMax + 1) / 8]byte

// Has reports whether key code is in the bitmap.
func (k *KeyBits) Has(code uint16) bool {
	if int(code) > KeyMax {
		return false
	}
	const w = int(unsafe.Sizeof(uintptr(0)))
	word := int(code) / (8 * w)
	bit := uint(code) % uint(8*w)
	var v uint64
	if w == 8 {
		v = binary.NativeEndian.Uint64(k[word*8:])
	} else {
		v = uint64(binary.NativeEndian.Uint32(k[word*4:]))
	}
	return v&(1<<bit) != 0
}

// Set sets key code in the bitmap, as the kernel would.
func (k *KeyBits) Set(code uint16) {
	const w = int(unsafe.Sizeof(uintptr(0)))
	word := int(code) / (8 * w)
	bit := uint(code) % uint(8*w)
	if w == 8 {
		v := binary.NativeEndian.Uint64(k[word*8:]) | 1<<bit
		binary.NativeEndian.PutUint64(k[word*8:], v)
	} else {
		v := binary.NativeEndian.Uint32(k[word*4:]) | 1<<bit
		binary.NativeEndian.PutUint32(k[word*4:], v)
	}
}

// DeviceInfo is what identifies an input device.
type DeviceInfo struct {
	Path    string
	Name    string
	Bus     uint16
	Vendor  uint16
	Product uint16
	Version uint16
	Keys    KeyBits
}

func (d DeviceInfo) String() string {
	return fmt.Sprintf("%s %q %04x:%04x", d.Path, d.Name, d.Vendor, d.Product)
}

// ParseInputID decodes struct input_id, what EVIOCGID returns: bustype,
// vendor, product, version, each u16 in the machine's byte order.
func ParseInputID(b []byte) (bus, vendor, product, version uint16, err error) {
	if len(b) < 8 {
		return 0, 0, 0, 0, fmt.Errorf("input_id: %d bytes, want 8", len(b))
	}
	bo := binary.NativeEndian
	return bo.Uint16(b[0:]), bo.Uint16(b[2:]), bo.Uint16(b[4:]), bo.Uint16(b[6:]), nil
}

// Linux evdev ioctl numbers (asm-generic encoding, the same on amd64 and
// arm64): _IOC(dir, 'E', nr, size).
func ioc(dir, nr, size uintptr) uintptr { return dir<<30 | size<<16 | 'E'<<8 | nr }

const (
	iocRead  = 2
	iocWrite = 1
)

var (
	eviocgid   = ioc(iocRead, 0x02, 8)
	eviocgrab  = ioc(iocWrite, 0x90, 4)
	eviocgname = func(n uintptr) uintptr { return ioc(iocRead, 0x06, n) }
	eviocgbit  = func(ev, n uintptr) uintptr { return ioc(iocRead, 0x20+ev, n) }
)

func ioctlBuf(f *os.File, req uintptr, buf []byte) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	if cerr := rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(unsafe.Pointer(&buf[0])))
	}); cerr != nil {
		return cerr
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// IdentifyIoctl asks the evdev driver who the device is.
func IdentifyIoctl(f *os.File) (DeviceInfo, error) {
	info := DeviceInfo{Path: f.Name()}
	id := make([]byte, 8)
	if err := ioctlBuf(f, eviocgid, id); err != nil {
		return info, fmt.Errorf("EVIOCGID %s: %w", f.Name(), err)
	}
	info.Bus, info.Vendor, info.Product, info.Version, _ = ParseInputID(id)
	name := make([]byte, 256)
	if err := ioctlBuf(f, eviocgname(uintptr(len(name))), name); err != nil {
		return info, fmt.Errorf("EVIOCGNAME %s: %w", f.Name(), err)
	}
	info.Name = cString(name)
	if err := ioctlBuf(f, eviocgbit(EvKey, uintptr(len(info.Keys))), info.Keys[:]); err != nil {
		return info, fmt.Errorf("EVIOCGBIT(EV_KEY) %s: %w", f.Name(), err)
	}
	return info, nil
}

// Grab takes the device exclusively: its events reach no one else (no
// console, no other reader) until the file is closed.
func Grab(f *os.File) error {
	// EVIOCGRAB takes the int by value, not a pointer.
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	if cerr := rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, eviocgrab, 1)
	}); cerr != nil {
		return cerr
	}
	if errno != 0 {
		return fmt.Errorf("EVIOCGRAB %s: %w", f.Name(), errno)
	}
	return nil
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimSpace(string(b))
}

// Match accepts devices and keys. Zero fields match anything.
type Match struct {
	Vendor, Product uint16 // 0 = any
	Name            string // substring of the device name, "" = any
	Keys            []uint16
}

// Accepts reports whether the device is one this entry names: ids and name
// match, and the device has at least one of Keys (a mouse from the same
// vendor does not qualify).
func (m Match) Accepts(d DeviceInfo) bool {
	if m.Vendor != 0 && d.Vendor != m.Vendor {
		return false
	}
	if m.Product != 0 && d.Product != m.Product {
		return false
	}
	if m.Name != "" && !strings.Contains(strings.ToLower(d.Name), strings.ToLower(m.Name)) {
		return false
	}
	if len(m.Keys) == 0 {
		return true
	}
	for _, k := range m.Keys {
		if d.Keys.Has(k) {
			return true
		}
	}
	return false
}

// triggers reports whether key code is one that presses.
func (m Match) triggers(code uint16) bool {
	if len(m.Keys) == 0 {
		return true
	}
	for _, k := range m.Keys {
		if k == code {
			return true
		}
	}
	return false
}

func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }

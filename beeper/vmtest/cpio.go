// Package vmtest checks the customer feedback on a real kernel: a QEMU VM
// (Debian's amd64 kernel) where the beeper plays on QEMU's emulated USB
// audio device through Linux's own snd-usb-audio driver, QEMU recording the
// output into a WAV file that the test analyses, and where the leds package
// drives a real LED class device (the Caps Lock LED of a uinput keyboard),
// whose changes the kernel timestamps; and a second VM (gokrazy's arm64
// kernel on QEMU's virt machine) where the leds package drives a line of the
// PL061, a real /dev/gpiochip0, through periph's gpioioctl driver. The
// first VM also runs the probe's trigger watcher against the kernel's
// input layer (probe/internal/trigger/vmcheck: an R400 and a Logitech
// keyboard made with uinput). The package holds the tests and the
// initramfs writer; the VMs' /init is in vmtest/guest.
package vmtest

import (
	"fmt"
	"io"
	"path"
	"strings"
)

// cpioWriter writes the "newc" cpio format that the kernel unpacks as an
// initramfs.
type cpioWriter struct {
	w    io.Writer
	ino  int
	dirs map[string]bool
	err  error
}

func newCPIO(w io.Writer) *cpioWriter {
	return &cpioWriter{w: w, dirs: map[string]bool{"": true, ".": true, "/": true}}
}

func (c *cpioWriter) entry(name string, mode uint32, data []byte) {
	if c.err != nil {
		return
	}
	c.ino++
	name = strings.TrimPrefix(name, "/")
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	buf := append([]byte(hdr), name...)
	buf = append(buf, 0)
	for len(buf)%4 != 0 {
		buf = append(buf, 0)
	}
	buf = append(buf, data...)
	for len(buf)%4 != 0 {
		buf = append(buf, 0)
	}
	_, c.err = c.w.Write(buf)
}

func (c *cpioWriter) mkdirAll(dir string) {
	dir = strings.TrimPrefix(path.Clean(dir), "/")
	if c.dirs[dir] {
		return
	}
	c.mkdirAll(path.Dir(dir))
	c.dirs[dir] = true
	c.entry(dir, 0o040755, nil)
}

// file adds a regular file, creating its directories first.
func (c *cpioWriter) file(name string, mode uint32, data []byte) {
	c.mkdirAll(path.Dir(strings.TrimPrefix(name, "/")))
	c.entry(name, 0o100000|mode, data)
}

// close writes the trailer.
func (c *cpioWriter) close() error {
	c.entry("TRAILER!!!", 0, nil)
	return c.err
}

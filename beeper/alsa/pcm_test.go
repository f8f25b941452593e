package alsa

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/presscap/presscap/beeper/alsa/alsatest"
)

var le = binary.LittleEndian

func ivAt(b []byte, i int) (lo, hi, flags uint32) {
	o := alsatest.OffIntervals + i*alsatest.IntervalSize
	return le.Uint32(b[o:]), le.Uint32(b[o+4:]), le.Uint32(b[o+8:])
}

func maskWord(b []byte, m, word int) uint32 {
	return le.Uint32(b[alsatest.OffMasks+m*alsatest.MaskSize+word*4:])
}

func ramp(n int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(i*7 - 20000)
	}
	return s
}

// TestPlaybackSequence plays through a card that only does 44.1 kHz stereo,
// takes at most 500 frames a call and underruns once, and checks every
// request in order, the argument bytes and that no sample is lost or doubled.
func TestPlaybackSequence(t *testing.T) {
	dev := &alsatest.Device{Rates: []uint32{44100}, Channels: []uint32{2}, MaxFramesPerWrite: 500, UnderrunAt: 2}
	p, err := Open(dev, "/dev/snd/pcmC1D0p", Want{Rates: []int{48000, 44100}, Channels: []int{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Rate() != 44100 || p.Channels() != 2 {
		t.Fatalf("negotiated %d Hz %d ch, want 44100 Hz 2 ch", p.Rate(), p.Channels())
	}
	if p.PeriodSize() != 882 || p.BufferSize() != 882*25 {
		t.Errorf("period %d buffer %d frames, want 882 (20 ms) and 22050 (500 ms)", p.PeriodSize(), p.BufferSize())
	}
	in := ramp(2 * 1200) // 1200 frames: 500 taken, EPIPE, 500, 200
	if err := p.Write(in); err != nil {
		t.Fatal(err)
	}
	if err := p.Drain(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{"PVERSION",
		"HW_REFINE", "HW_REFINE", "HW_REFINE", "HW_REFINE", // 48k mono, 48k stereo, 44.1k mono, 44.1k stereo
		"HW_REFINE", // 20 ms periods, 500 ms buffer
		"HW_PARAMS", "SW_PARAMS", "PREPARE",
		"WRITEI_FRAMES", "WRITEI_FRAMES", "PREPARE", "WRITEI_FRAMES", "WRITEI_FRAMES",
		"DRAIN", "DROP", "HW_FREE"}
	if got := dev.Names(); !reflect.DeepEqual(got, want) {
		t.Fatalf("requests\n got %v\nwant %v", got, want)
	}
	if o, c := dev.OpenCount(); o != 1 || c != 1 {
		t.Errorf("opened %d closed %d times", o, c)
	}
	calls := dev.Calls()
	// The refine candidates, in preference order, with exact intervals.
	for i, w := range []struct{ rate, ch uint32 }{{48000, 1}, {48000, 2}, {44100, 1}, {44100, 2}} {
		b := calls[1+i].Arg
		if len(b) != alsatest.HWParamsSize {
			t.Fatalf("HW_REFINE argument is %d bytes", len(b))
		}
		rlo, rhi, rfl := ivAt(b, alsatest.IvRate)
		clo, chi, _ := ivAt(b, alsatest.IvChannels)
		if rlo != w.rate || rhi != w.rate || clo != w.ch || chi != w.ch || rfl&intervalInteger == 0 {
			t.Errorf("HW_REFINE %d: rate [%d,%d] channels [%d,%d], want %d Hz %d ch", i, rlo, rhi, clo, chi, w.rate, w.ch)
		}
		wantErr := i < 3
		if (calls[1+i].Err != nil) != wantErr {
			t.Errorf("HW_REFINE %d answered %v", i, calls[1+i].Err)
		}
	}
	hw := calls[6].Arg
	// access = RW_INTERLEAVED (bit 3), format = S16_LE (bit 2), subformat STD (bit 0)
	if maskWord(hw, 0, 0) != 1<<3 || maskWord(hw, 1, 0) != 1<<2 || maskWord(hw, 2, 0) != 1 {
		t.Errorf("HW_PARAMS masks %#x %#x %#x", maskWord(hw, 0, 0), maskWord(hw, 1, 0), maskWord(hw, 2, 0))
	}
	for w := 1; w < 8; w++ {
		if maskWord(hw, 0, w)|maskWord(hw, 1, w) != 0 {
			t.Errorf("HW_PARAMS mask word %d set", w)
		}
	}
	if lo, hi, _ := ivAt(hw, alsatest.IvPeriodTime); lo != 20000 || hi != 20000 {
		t.Errorf("HW_PARAMS period time [%d,%d] µs, want 20000", lo, hi)
	}
	if lo, hi, _ := ivAt(hw, alsatest.IvBufferTime); lo != 500000 || hi != 500000 {
		t.Errorf("HW_PARAMS buffer time [%d,%d] µs, want 500000", lo, hi)
	}
	if le.Uint32(hw[alsatest.OffRmask:]) != 0xffffffff {
		t.Errorf("HW_PARAMS rmask %#x", le.Uint32(hw[alsatest.OffRmask:]))
	}
	sw := calls[7].Arg
	if len(sw) != alsatest.SWParamsSize {
		t.Fatalf("SW_PARAMS argument is %d bytes", len(sw))
	}
	if am, st, sp := le.Uint64(sw[alsatest.OffAvailMin:]), le.Uint64(sw[alsatest.OffStartThreshold:]), le.Uint64(sw[alsatest.OffStopThreshold:]); am != 882 || st != 11025 || sp != 22050 {
		t.Errorf("SW_PARAMS avail_min %d start %d stop %d, want 882 11025 22050", am, st, sp)
	}
	// Frames requested: all 1200, the same again after the underrun, then what is left.
	var frames []uint64
	for _, c := range calls {
		if c.Name == "WRITEI_FRAMES" {
			if len(c.Arg) != alsatest.XferiSize {
				t.Fatalf("WRITEI_FRAMES argument is %d bytes", len(c.Arg))
			}
			frames = append(frames, le.Uint64(c.Arg[16:]))
		}
	}
	if !reflect.DeepEqual(frames, []uint64{1200, 700, 700, 200}) {
		t.Errorf("WRITEI_FRAMES frames %v, want [1200 700 700 200]", frames)
	}
	if got := dev.Samples(); !reflect.DeepEqual(got, in) {
		t.Errorf("device got %d samples, want the %d written, in order", len(got), len(in))
	}
}

// TestOpenFallsBackToKernelGeometry: a card that only does 8 or 32 ms
// periods refuses the 20 ms geometry; the kernel's choice is taken instead.
func TestOpenFallsBackToKernelGeometry(t *testing.T) {
	dev := &alsatest.Device{Rates: []uint32{48000}, Channels: []uint32{2}, PeriodMicros: []uint32{8000, 32000}}
	p, err := Open(dev, "x", Want{Rates: []int{48000}, Channels: []int{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.PeriodSize() != 384 {
		t.Errorf("period %d frames, want 384 (8 ms at 48 kHz)", p.PeriodSize())
	}
	want := []string{"PVERSION", "HW_REFINE", "HW_REFINE", "HW_REFINE", "HW_PARAMS", "SW_PARAMS", "PREPARE"}
	if got := dev.Names(); !reflect.DeepEqual(got, want) {
		t.Errorf("requests %v, want %v", got, want)
	}
	calls := dev.Calls()
	if calls[3].Err == nil {
		t.Error("the 20 ms geometry was not refused by the card")
	}
	if lo, hi, _ := ivAt(calls[4].Arg, alsatest.IvPeriodTime); lo != 8000 || hi != 32000 {
		t.Errorf("HW_PARAMS period time [%d,%d], want the card's range [8000,32000] µs", lo, hi)
	}
}

func TestOpenRefusesUnsupportedCard(t *testing.T) {
	dev := &alsatest.Device{Rates: []uint32{96000}, Channels: []uint32{2}}
	_, err := Open(dev, "/dev/snd/pcmC0D0p", Want{Rates: []int{48000, 44100}, Channels: []int{1, 2}})
	if err == nil || !strings.Contains(err.Error(), "48000 Hz 1 ch") || !strings.Contains(err.Error(), "pcmC0D0p") {
		t.Fatalf("err = %v, want one naming the device and the formats tried", err)
	}
	if o, c := dev.OpenCount(); o != c {
		t.Errorf("opened %d, closed %d times", o, c)
	}
}

func TestWriteOnVanishedDevice(t *testing.T) {
	dev := &alsatest.Device{Rates: []uint32{48000}, Channels: []uint32{1}}
	p, err := Open(dev, "x", Want{Rates: []int{48000}, Channels: []int{1}})
	if err != nil {
		t.Fatal(err)
	}
	dev.SetGone(true)
	if err := p.Write(ramp(100)); !errors.Is(err, unix.ENODEV) {
		t.Errorf("Write on a pulled device = %v, want ENODEV", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if _, err := Open(dev, "x", Want{Rates: []int{48000}, Channels: []int{1}}); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Open of a pulled device = %v, want ENOENT", err)
	}
}

func TestRepeatedUnderrunGivesUp(t *testing.T) {
	dev := &alsatest.Device{Rates: []uint32{48000}, Channels: []uint32{1}}
	p, err := Open(dev, "x", Want{Rates: []int{48000}, Channels: []int{1}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	fail := &failingSys{Device: dev}
	p.sys = fail
	if err := p.Write(ramp(100)); !errors.Is(err, unix.EPIPE) {
		t.Errorf("Write = %v, want EPIPE after giving up", err)
	}
	if fail.writes != 4 {
		t.Errorf("%d write attempts, want 4 (1 + 3 recoveries)", fail.writes)
	}
}

type failingSys struct {
	*alsatest.Device
	writes int
}

func (f *failingSys) Ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	if req == ioctlWriteIFrame {
		f.writes++
		return unix.EPIPE
	}
	return f.Device.Ioctl(fd, req, arg)
}

func TestLocate(t *testing.T) {
	root := t.TempDir()
	write := func(s string) {
		if err := os.MkdirAll(filepath.Join(root, "asound"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "asound", "cards"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(` 0 [Headphones     ]: bcm2835_headpho - bcm2835 Headphones
                      bcm2835 Headphones
 1 [vc4hdmi0       ]: vc4-hdmi - vc4-hdmi-0
                      vc4-hdmi-0
 2 [C920           ]: USB-Audio - HD Pro Webcam C920
                      HD Pro Webcam C920 at usb-0000:01:00.0-1.2, high speed
 3 [Device         ]: USB-Audio - USB Audio Device
                      C-Media Electronics Inc. USB Audio Device at usb-0000:01:00.0-1.3, full speed
`)
	// Which cards can play: the webcam (card 2) has a microphone only.
	for _, d := range []string{"card0/pcm0p", "card1/pcm0p", "card2/pcm0c", "card3/pcm0p", "card3/pcm0c"} {
		if err := os.MkdirAll(filepath.Join(root, "asound", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ spec, want string }{
		{"", "/dev/snd/pcmC3D0p"},
		{"Headphones", "/dev/snd/pcmC0D0p"},
		{"hw:1", "/dev/snd/pcmC1D0p"},
		{"hw:Device,3", "/dev/snd/pcmC3D3p"},
		{"/dev/snd/pcmC9D9p", "/dev/snd/pcmC9D9p"},
	} {
		got, err := Locate(c.spec, root, "/dev")
		if err != nil || got != c.want {
			t.Errorf("Locate(%q) = %q, %v; want %q", c.spec, got, err, c.want)
		}
	}
	for _, spec := range []string{"hw:7", "Nope", "hw:1,x"} {
		if _, err := Locate(spec, root, "/dev"); err == nil || !strings.Contains(err.Error(), spec[min(3, len(spec)):]) {
			t.Errorf("Locate(%q) = %v, want an error naming it", spec, err)
		}
	}
	write(" 0 [Headphones     ]: bcm2835_headpho - bcm2835 Headphones\n                      bcm2835 Headphones\n")
	if _, err := Locate("", root, "/dev"); !errors.Is(err, ErrNoDevice) {
		t.Errorf("Locate without a USB card = %v, want ErrNoDevice", err)
	}
	if _, err := Locate("", filepath.Join(root, "missing"), "/dev"); !errors.Is(err, ErrNoDevice) {
		t.Errorf("Locate without /proc/asound = %v, want ErrNoDevice", err)
	}
}

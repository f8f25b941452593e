package alsa

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Sys is the part of the kernel a PCM talks to. Kernel is the real one;
// tests pass a fake that records the requests.
type Sys interface {
	// Open opens a PCM device for playback without waiting for another
	// process to release it.
	Open(path string) (fd int, err error)
	// Ioctl issues req on fd. arg points to the request's argument
	// (IoctlSize(req) bytes), or is nil when the request takes none.
	Ioctl(fd int, req uintptr, arg unsafe.Pointer) error
	Close(fd int) error
}

// Kernel is the real Sys.
type Kernel struct{}

// Open opens path non-blocking, so that a device held by another process
// fails at once with EBUSY, then switches to blocking writes.
func (Kernel) Open(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// Ioctl issues the request.
func (Kernel) Ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

// Close closes fd.
func (Kernel) Close(fd int) error { return unix.Close(fd) }

// Want is what a caller accepts, in order of preference.
type Want struct {
	Rates    []int // e.g. 48000, 44100
	Channels []int // e.g. 1, 2
}

// PCM is an open playback device configured for interleaved S16_LE.
type PCM struct {
	sys        Sys
	fd         int
	path       string
	rate       int
	channels   int
	periodSize int
	bufferSize int
}

// Target buffer geometry: periods of about 20 ms in a buffer of about
// 500 ms. A beep is written at once, so a large buffer costs no latency,
// and the kernel gives up a DRAIN (EIO) when no period ends for 1.1 times
// the buffer: a small buffer made that happen on a busy (emulated) host.
const (
	wantPeriodMicros = 20000
	wantBufferMicros = 500000
)

// Open opens the playback device at path and negotiates the first rate and
// channel count of want that the device supports, in S16_LE interleaved
// (HW_REFINE per candidate, HW_REFINE of the buffer geometry, HW_PARAMS,
// SW_PARAMS, PREPARE).
func Open(sys Sys, path string, want Want) (*PCM, error) {
	fd, err := sys.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	p := &PCM{sys: sys, fd: fd, path: path}
	if err := p.setup(want); err != nil {
		sys.Close(fd)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

func (p *PCM) ioctl(name string, req uintptr, arg unsafe.Pointer) error {
	if err := p.sys.Ioctl(p.fd, req, arg); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (p *PCM) setup(want Want) error {
	var ver int32
	err := p.ioctl("PVERSION", ioctlPVersion, unsafe.Pointer(&ver))
	runtime.KeepAlive(&ver)
	if err != nil {
		return fmt.Errorf("not an ALSA PCM device: %w", err)
	}
	if ver>>16 != protoMajor {
		return fmt.Errorf("PCM protocol %d.%d.%d is not 2.x", ver>>16, ver>>8&0xff, ver&0xff)
	}
	var hw *hwParams
	var tried []string
	for _, rate := range want.Rates {
		for _, ch := range want.Channels {
			cand := anyParams()
			cand.setMask(paramAccess, accessRWInterleaved)
			cand.setMask(paramFormat, formatS16LE)
			cand.setMask(paramSubformat, subformatStd)
			cand.setInteger(paramChannels, uint32(ch))
			cand.setInteger(paramRate, uint32(rate))
			tried = append(tried, fmt.Sprintf("%d Hz %d ch", rate, ch))
			if err := p.ioctl("HW_REFINE", ioctlHWRefine, unsafe.Pointer(cand)); err != nil {
				if errors.Is(err, unix.EINVAL) {
					continue
				}
				return err
			}
			hw = cand
			break
		}
		if hw != nil {
			break
		}
	}
	if hw == nil {
		return fmt.Errorf("the device accepts none of S16_LE %v", tried)
	}
	// Ask for the buffer geometry within what the card offered. A card
	// whose rules refuse it (periods of fixed sizes) gets the kernel's own
	// choice instead of failing.
	geo := *hw
	geo.narrow(paramPeriodTime, wantPeriodMicros)
	geo.narrow(paramBufferTime, wantBufferMicros)
	geo.Rmask = math.MaxUint32
	switch err := p.ioctl("HW_REFINE", ioctlHWRefine, unsafe.Pointer(&geo)); {
	case err == nil:
		hw = &geo
	case !errors.Is(err, unix.EINVAL):
		return err
	}
	hw.Rmask = math.MaxUint32
	if err := p.ioctl("HW_PARAMS", ioctlHWParams, unsafe.Pointer(hw)); err != nil {
		return err
	}
	p.rate = int(hw.Intervals[paramRate-firstInterval].Min)
	p.channels = int(hw.Intervals[paramChannels-firstInterval].Min)
	p.periodSize = int(hw.Intervals[paramPeriodSize-firstInterval].Min)
	p.bufferSize = int(hw.Intervals[paramBufferSize-firstInterval].Min)
	if p.periodSize <= 0 || p.bufferSize <= 0 || p.channels <= 0 {
		return fmt.Errorf("HW_PARAMS returned period %d, buffer %d frames, %d channels", p.periodSize, p.bufferSize, p.channels)
	}

	sw := swParams{
		PeriodStep: 1,
		AvailMin:   uint(p.periodSize),
		XferAlign:  1,
		// Start once half the buffer is queued; Drain starts a shorter sound.
		StartThreshold: uint(p.bufferSize / 2),
		StopThreshold:  uint(p.bufferSize),
	}
	if err := p.ioctl("SW_PARAMS", ioctlSWParams, unsafe.Pointer(&sw)); err != nil {
		return err
	}
	return p.ioctl("PREPARE", ioctlPrepare, nil)
}

// anyParams returns hw params that allow everything (snd_pcm_hw_params_any).
func anyParams() *hwParams {
	hw := &hwParams{Rmask: math.MaxUint32, Info: math.MaxUint32}
	for i := range hw.Masks {
		for j := range hw.Masks[i].Bits {
			hw.Masks[i].Bits[j] = math.MaxUint32
		}
	}
	for i := range hw.Intervals {
		hw.Intervals[i] = interval{Min: 0, Max: math.MaxUint32}
	}
	return hw
}

// setMask restricts mask param to the single value v.
func (hw *hwParams) setMask(param int, v uint) {
	m := &hw.Masks[param]
	*m = mask{}
	m.Bits[v/32] = 1 << (v % 32)
}

// setInteger restricts interval param to exactly v.
func (hw *hwParams) setInteger(param int, v uint32) {
	hw.Intervals[param-firstInterval] = interval{Min: v, Max: v, Flags: intervalInteger}
}

// narrow restricts interval param to the value inside its current range
// nearest to v, so the kernel's choice lands near the wanted geometry.
func (hw *hwParams) narrow(param int, v uint32) {
	iv := &hw.Intervals[param-firstInterval]
	lo, hi := iv.Min, iv.Max
	if iv.Flags&intervalOpenMin != 0 && lo < math.MaxUint32 {
		lo++
	}
	if iv.Flags&intervalOpenMax != 0 && hi > 0 {
		hi--
	}
	if lo > hi {
		return
	}
	v = max(lo, min(hi, v))
	iv.Min, iv.Max, iv.Flags = v, v, iv.Flags&intervalInteger
}

// Rate returns the negotiated sample rate in Hz.
func (p *PCM) Rate() int { return p.rate }

// Channels returns the negotiated channel count.
func (p *PCM) Channels() int { return p.channels }

// PeriodSize and BufferSize return the negotiated geometry in frames.
func (p *PCM) PeriodSize() int { return p.periodSize }

// BufferSize returns the negotiated buffer size in frames.
func (p *PCM) BufferSize() int { return p.bufferSize }

// Write plays interleaved samples, blocking while the buffer is full. An
// underrun (EPIPE) or a resume after suspend (ESTRPIPE) is recovered and the
// rest is written.
func (p *PCM) Write(samples []int16) error {
	if len(samples)%p.channels != 0 {
		return fmt.Errorf("write: %d samples is not a whole number of %d-channel frames", len(samples), p.channels)
	}
	recoveries := 0
	for len(samples) > 0 {
		x := xferi{Buf: unsafe.Pointer(&samples[0]), Frames: uint(len(samples) / p.channels)}
		err := p.sys.Ioctl(p.fd, ioctlWriteIFrame, unsafe.Pointer(&x))
		runtime.KeepAlive(samples)
		switch {
		case err == nil:
			if x.Result <= 0 {
				return fmt.Errorf("WRITEI_FRAMES wrote %d frames", x.Result)
			}
			samples = samples[int(x.Result)*p.channels:]
			recoveries = 0
		case errors.Is(err, unix.EPIPE), errors.Is(err, unix.ESTRPIPE):
			// A few recoveries in a row mean the device is not coming back.
			if recoveries++; recoveries > 3 {
				return fmt.Errorf("WRITEI_FRAMES: %w (not recovered)", err)
			}
			if err := p.recover(err); err != nil {
				return err
			}
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
		default:
			return fmt.Errorf("WRITEI_FRAMES: %w", err)
		}
	}
	return nil
}

// recover brings the stream back to PREPARED after an xrun or a suspend.
func (p *PCM) recover(cause error) error {
	if errors.Is(cause, unix.ESTRPIPE) {
		for i := 0; i < 100; i++ {
			err := p.sys.Ioctl(p.fd, ioctlResume, nil)
			if err == nil {
				return nil
			}
			if !errors.Is(err, unix.EAGAIN) {
				break // the driver cannot resume: prepare instead
			}
		}
	}
	return p.ioctl("PREPARE after "+cause.Error(), ioctlPrepare, nil)
}

// Drain waits until everything written has been played.
func (p *PCM) Drain() error {
	err := p.ioctl("DRAIN", ioctlDrain, nil)
	if errors.Is(err, unix.EPIPE) {
		// The stream ran dry at the end: everything was played.
		return nil
	}
	return err
}

// Close stops the stream, frees the hardware setup and closes the device.
func (p *PCM) Close() error {
	if p.fd < 0 {
		return nil
	}
	_ = p.sys.Ioctl(p.fd, ioctlDrop, nil)
	_ = p.sys.Ioctl(p.fd, ioctlHWFree, nil)
	err := p.sys.Close(p.fd)
	p.fd = -1
	if err != nil {
		return fmt.Errorf("close %s: %w", p.path, err)
	}
	return nil
}

// Package alsatest is a fake ALSA playback device for tests: it answers the
// PCM ioctls the way the kernel does (reading and writing the argument
// structures in place, by byte offsets taken from the kernel's headers for
// 64-bit targets) and records every request with a copy of its argument.
package alsatest

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Request numbers and offsets for LP64 Linux (amd64, arm64), written out
// from include/uapi/sound/asound.h independently of package alsa's structs.
const (
	ReqPVersion = 0x80044100
	ReqHWRefine = 0xc2604110
	ReqHWParams = 0xc2604111
	ReqHWFree   = 0x00004112
	ReqSWParams = 0xc0884113
	ReqPrepare  = 0x00004140
	ReqDrop     = 0x00004143
	ReqDrain    = 0x00004144
	ReqResume   = 0x00004147
	ReqWriteI   = 0x40184150

	OffMasks     = 4   // snd_pcm_hw_params.masks[0]
	MaskSize     = 32  // struct snd_mask
	OffIntervals = 260 // snd_pcm_hw_params.intervals[0] (4 + 8*32)
	IntervalSize = 12  // struct snd_interval
	OffRmask     = 512
	OffCmask     = 516
	OffFifoSize  = 536
	HWParamsSize = 608

	OffAvailMin       = 16 // snd_pcm_sw_params
	OffStartThreshold = 32
	OffStopThreshold  = 40
	OffBoundary       = 64
	SWParamsSize      = 136

	XferiSize = 24 // result, buf, frames
)

// Interval indexes (SNDRV_PCM_HW_PARAM_* - 8).
const (
	IvChannels   = 10 - 8
	IvRate       = 11 - 8
	IvPeriodTime = 12 - 8
	IvPeriodSize = 13 - 8
	IvPeriods    = 15 - 8
	IvBufferTime = 16 - 8
	IvBufferSize = 17 - 8
)

// Call is one recorded request.
type Call struct {
	Req  uintptr
	Name string
	Arg  []byte // the argument as passed in (before the fake answers)
	Err  error  // what the fake answered
}

// Device is a fake sound card.
type Device struct {
	// Rates and Channels are what the card accepts.
	Rates    []uint32
	Channels []uint32
	// Path is the only path Open accepts; empty accepts any.
	Path string
	// MaxFramesPerWrite limits how much one WRITEI_FRAMES takes (0: all),
	// so that partial writes happen.
	MaxFramesPerWrite int
	// UnderrunAt makes the n-th WRITEI_FRAMES call (from 1) fail with
	// EPIPE, like an xrun.
	UnderrunAt int
	// PeriodMicros, when set, are the only period times the card does, a
	// rule that an interval cannot express: the refined range spans them,
	// but a single value between them is refused.
	PeriodMicros []uint32
	// Gone makes every request fail with ENODEV, like a pulled USB device.
	Gone bool
	// OpenErr is returned by Open when set.
	OpenErr error

	mu      sync.Mutex
	calls   []Call
	samples []int16
	chans   int
	writes  int
	opens   int
	closes  int
	open    bool
}

// Calls returns the recorded requests.
func (d *Device) Calls() []Call {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Call(nil), d.calls...)
}

// Names returns the names of the recorded requests, in order.
func (d *Device) Names() []string {
	var n []string
	for _, c := range d.Calls() {
		n = append(n, c.Name)
	}
	return n
}

// Samples returns every sample written, interleaved.
func (d *Device) Samples() []int16 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]int16(nil), d.samples...)
}

// OpenCount and CloseCount count device opens and closes.
func (d *Device) OpenCount() (opens, closes int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.opens, d.closes
}

// Reset forgets the recorded calls and samples.
func (d *Device) Reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls, d.samples, d.writes = nil, nil, 0
}

// SetGone makes the device vanish or come back.
func (d *Device) SetGone(g bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.Gone = g
}

const fakeFD = 42

// Open implements alsa.Sys.
func (d *Device) Open(path string) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.OpenErr != nil {
		return -1, d.OpenErr
	}
	if d.Gone || (d.Path != "" && path != d.Path) {
		return -1, unix.ENOENT
	}
	if d.open {
		return -1, unix.EBUSY
	}
	d.open = true
	d.opens++
	return fakeFD, nil
}

// Close implements alsa.Sys.
func (d *Device) Close(fd int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if fd != fakeFD || !d.open {
		return unix.EBADF
	}
	d.open = false
	d.closes++
	return nil
}

var names = map[uintptr]string{
	ReqPVersion: "PVERSION", ReqHWRefine: "HW_REFINE", ReqHWParams: "HW_PARAMS", ReqHWFree: "HW_FREE",
	ReqSWParams: "SW_PARAMS", ReqPrepare: "PREPARE", ReqDrop: "DROP", ReqDrain: "DRAIN",
	ReqResume: "RESUME", ReqWriteI: "WRITEI_FRAMES",
}

// Ioctl implements alsa.Sys.
func (d *Device) Ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	size := int(req >> 16 & (1<<14 - 1))
	var b []byte
	if size > 0 {
		if arg == nil {
			return unix.EFAULT
		}
		b = unsafe.Slice((*byte)(arg), size)
	}
	name, ok := names[req]
	if !ok {
		name = fmt.Sprintf("%#x", req)
	}
	c := Call{Req: req, Name: name, Arg: append([]byte(nil), b...)}
	c.Err = d.answer(fd, req, b)
	d.calls = append(d.calls, c)
	return c.Err
}

var le = binary.LittleEndian

func interval(b []byte, i int) (lo, hi, flags uint32) {
	o := OffIntervals + i*IntervalSize
	return le.Uint32(b[o:]), le.Uint32(b[o+4:]), le.Uint32(b[o+8:])
}

func setInterval(b []byte, i int, lo, hi uint32) {
	o := OffIntervals + i*IntervalSize
	le.PutUint32(b[o:], lo)
	le.PutUint32(b[o+4:], hi)
	le.PutUint32(b[o+8:], 1<<2) // integer
}

func maskHas(b []byte, m int, v uint) bool {
	o := OffMasks + m*MaskSize + int(v/32)*4
	return le.Uint32(b[o:])&(1<<(v%32)) != 0
}

// pick returns the first of vals within [lo, hi].
func pick(vals []uint32, lo, hi uint32) (uint32, bool) {
	for _, v := range vals {
		if v >= lo && v <= hi {
			return v, true
		}
	}
	return 0, false
}

func (d *Device) answer(fd int, req uintptr, b []byte) error {
	if fd != fakeFD || !d.open {
		return unix.EBADF
	}
	if d.Gone {
		return unix.ENODEV
	}
	switch req {
	case ReqPVersion:
		le.PutUint32(b, 2<<16|0<<8|15)
	case ReqHWRefine, ReqHWParams:
		if !maskHas(b, 0, 3) || !maskHas(b, 1, 2) {
			return unix.EINVAL // only RW_INTERLEAVED S16_LE
		}
		clo, chi, _ := interval(b, IvChannels)
		rlo, rhi, _ := interval(b, IvRate)
		ch, ok1 := pick(d.Channels, clo, chi)
		rate, ok2 := pick(d.Rates, rlo, rhi)
		if !ok1 || !ok2 {
			return unix.EINVAL
		}
		setInterval(b, IvChannels, ch, ch)
		setInterval(b, IvRate, rate, rate)
		// The card does periods of 1 to 1000 ms, 2 to 32 periods.
		plo, phi, _ := interval(b, IvPeriodTime)
		plo, phi = max(plo, 1000), min(phi, 1000000)
		if len(d.PeriodMicros) > 0 {
			var in []uint32
			for _, f := range d.PeriodMicros {
				if f >= plo && f <= phi {
					in = append(in, f)
				}
			}
			if len(in) == 0 {
				return unix.EINVAL
			}
			plo, phi = slices.Min(in), slices.Max(in)
		}
		blo, bhi, _ := interval(b, IvBufferTime)
		if req == ReqHWRefine {
			setInterval(b, IvPeriodTime, plo, phi)
			setInterval(b, IvBufferTime, max(blo, 2000), min(bhi, 32000000))
			return nil
		}
		// HW_PARAMS chooses the smallest period and buffer left, as the
		// kernel does.
		period := uint32(uint64(rate) * uint64(plo) / 1000000)
		periods := max(2, min(32, blo/max(plo, 1)))
		_ = bhi
		setInterval(b, IvPeriodTime, plo, plo)
		setInterval(b, IvPeriodSize, period, period)
		setInterval(b, IvPeriods, periods, periods)
		setInterval(b, IvBufferSize, period*periods, period*periods)
		d.chans = int(ch)
	case ReqSWParams:
		if le.Uint64(b[OffAvailMin:]) == 0 {
			return unix.EINVAL
		}
		le.PutUint64(b[OffBoundary:], 1<<62)
	case ReqPrepare, ReqDrop, ReqHWFree, ReqResume, ReqDrain:
	case ReqWriteI:
		d.writes++
		if d.writes == d.UnderrunAt {
			return unix.EPIPE
		}
		if d.chans == 0 {
			return unix.EBADFD // not configured
		}
		buf := *(*unsafe.Pointer)(unsafe.Pointer(&b[8]))
		frames := int(le.Uint64(b[16:]))
		if d.MaxFramesPerWrite > 0 {
			frames = min(frames, d.MaxFramesPerWrite)
		}
		d.samples = append(d.samples, unsafe.Slice((*int16)(buf), frames*d.chans)...)
		le.PutUint64(b[0:], uint64(frames))
	default:
		return unix.ENOTTY
	}
	return nil
}

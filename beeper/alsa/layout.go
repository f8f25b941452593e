// Package alsa plays interleaved 16-bit PCM on a Linux ALSA playback device
// (/dev/snd/pcmC*D*p) with the kernel's PCM ioctls, without alsa-lib, so
// that it works in a static cgo-free binary on a system with no alsa.conf.
//
// The structures below mirror include/uapi/sound/asound.h. Their layout is
// checked for amd64 and arm64 (and 32-bit arm) by the package's tests.
package alsa

import "unsafe"

// Indexes of snd_pcm_hw_params' masks and intervals (SNDRV_PCM_HW_PARAM_*).
const (
	paramAccess    = 0
	paramFormat    = 1
	paramSubformat = 2

	firstInterval    = 8
	paramSampleBits  = 8
	paramFrameBits   = 9
	paramChannels    = 10
	paramRate        = 11
	paramPeriodTime  = 12
	paramPeriodSize  = 13
	paramPeriodBytes = 14
	paramPeriods     = 15
	paramBufferTime  = 16
	paramBufferSize  = 17
	paramBufferBytes = 18
	paramTickTime    = 19
)

// Values of the access and format masks.
const (
	accessRWInterleaved = 3 // SNDRV_PCM_ACCESS_RW_INTERLEAVED
	formatS16LE         = 2 // SNDRV_PCM_FORMAT_S16_LE
	subformatStd        = 0 // SNDRV_PCM_SUBFORMAT_STD
)

// Bits of snd_interval's bit fields (openmin:1, openmax:1, integer:1,
// empty:1; GCC allocates them from the least significant bit on both
// little-endian targets).
const (
	intervalOpenMin = 1 << 0
	intervalOpenMax = 1 << 1
	intervalInteger = 1 << 2
	intervalEmpty   = 1 << 3
)

// snd_mask: a 256-bit set.
type mask struct {
	Bits [8]uint32
}

// snd_interval.
type interval struct {
	Min, Max uint32
	Flags    uint32
}

// snd_pcm_hw_params. FifoSize is snd_pcm_uframes_t (unsigned long), which
// is why the structure is 608 bytes on 64-bit targets and 604 on 32-bit ones.
type hwParams struct {
	Flags     uint32
	Masks     [3]mask
	Mres      [5]mask
	Intervals [12]interval
	Ires      [9]interval
	Rmask     uint32
	Cmask     uint32
	Info      uint32
	Msbits    uint32
	RateNum   uint32
	RateDen   uint32
	FifoSize  uint
	Reserved  [64]byte
}

// snd_pcm_sw_params.
type swParams struct {
	TstampMode       int32
	PeriodStep       uint32
	SleepMin         uint32
	AvailMin         uint
	XferAlign        uint
	StartThreshold   uint
	StopThreshold    uint
	SilenceThreshold uint
	SilenceSize      uint
	Boundary         uint
	Proto            uint32
	TstampType       uint32
	Reserved         [56]byte
}

// snd_xferi: one interleaved transfer.
type xferi struct {
	Result int
	Buf    unsafe.Pointer
	Frames uint
}

// Generic Linux ioctl encoding (asm-generic/ioctl.h), used by both amd64 and
// arm64: nr in bits 0-7, type in 8-15, size in 16-29, direction in 30-31.
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2

	iocNRShift   = 0
	iocTypeShift = 8
	iocSizeShift = 16
	iocDirShift  = 30
)

// The PCM ioctls. They are constant expressions so that the tests can
// evaluate them for another GOARCH with go/types.
const (
	ioctlPVersion    = iocRead<<iocDirShift | unsafe.Sizeof(int32(0))<<iocSizeShift | 'A'<<iocTypeShift | 0x00<<iocNRShift
	ioctlHWRefine    = (iocRead|iocWrite)<<iocDirShift | unsafe.Sizeof(hwParams{})<<iocSizeShift | 'A'<<iocTypeShift | 0x10<<iocNRShift
	ioctlHWParams    = (iocRead|iocWrite)<<iocDirShift | unsafe.Sizeof(hwParams{})<<iocSizeShift | 'A'<<iocTypeShift | 0x11<<iocNRShift
	ioctlHWFree      = iocNone<<iocDirShift | 'A'<<iocTypeShift | 0x12<<iocNRShift
	ioctlSWParams    = (iocRead|iocWrite)<<iocDirShift | unsafe.Sizeof(swParams{})<<iocSizeShift | 'A'<<iocTypeShift | 0x13<<iocNRShift
	ioctlPrepare     = iocNone<<iocDirShift | 'A'<<iocTypeShift | 0x40<<iocNRShift
	ioctlDrop        = iocNone<<iocDirShift | 'A'<<iocTypeShift | 0x43<<iocNRShift
	ioctlDrain       = iocNone<<iocDirShift | 'A'<<iocTypeShift | 0x44<<iocNRShift
	ioctlResume      = iocNone<<iocDirShift | 'A'<<iocTypeShift | 0x47<<iocNRShift
	ioctlWriteIFrame = iocWrite<<iocDirShift | unsafe.Sizeof(xferi{})<<iocSizeShift | 'A'<<iocTypeShift | 0x50<<iocNRShift
)

// protoVersion is the PCM protocol version (SNDRV_PROTOCOL_VERSION) that
// this package speaks; the kernel's must have the same major number.
const protoMajor = 2

package alsa

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Card is one line of /proc/asound/cards.
type Card struct {
	Index  int
	ID     string // e.g. "Device"
	Driver string // e.g. "USB-Audio"
	Name   string
}

// USB reports whether the card is driven by snd-usb-audio.
func (c Card) USB() bool { return c.Driver == "USB-Audio" }

// Cards parses procRoot/asound/cards (procRoot is normally "/proc").
func Cards(procRoot string) ([]Card, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, "asound", "cards"))
	if err != nil {
		return nil, fmt.Errorf("list sound cards: %w", err)
	}
	var cards []Card
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// " 1 [Device         ]: USB-Audio - USB Audio Device"; the
		// indented second line of each card is skipped.
		line := sc.Text()
		open, close := strings.IndexByte(line, '['), strings.Index(line, "]:")
		if open < 0 || close < open {
			continue
		}
		idx, err := strconv.Atoi(strings.TrimSpace(line[:open]))
		if err != nil {
			continue
		}
		c := Card{Index: idx, ID: strings.TrimSpace(line[open+1 : close])}
		rest := strings.TrimSpace(line[close+2:])
		c.Driver, c.Name, _ = strings.Cut(rest, " - ")
		c.Driver = strings.TrimSpace(c.Driver)
		cards = append(cards, c)
	}
	return cards, nil
}

// ErrNoDevice means no sound device matched; it is the normal state of a
// box shipped without a speaker.
var ErrNoDevice = errors.New("no sound device")

// Locate returns the playback device path for spec: "" for device 0 of the
// first USB card that has one, "hw:C" or "hw:C,D" with C a card index or id, a card id,
// or a path (returned as is). procRoot and devRoot are normally "/proc" and
// "/dev".
func Locate(spec, procRoot, devRoot string) (string, error) {
	if strings.HasPrefix(spec, "/") {
		return spec, nil
	}
	cardSpec, dev := spec, 0
	if s, ok := strings.CutPrefix(spec, "hw:"); ok {
		cardSpec = s
		if c, d, ok := strings.Cut(s, ","); ok {
			n, err := strconv.Atoi(d)
			if err != nil || n < 0 {
				return "", fmt.Errorf("sound device %q: bad PCM device number %q", spec, d)
			}
			cardSpec, dev = c, n
		}
	}
	cards, err := Cards(procRoot)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%w: the kernel has no sound support loaded (%v)", ErrNoDevice, err)
		}
		return "", err
	}
	for _, c := range cards {
		match := false
		switch {
		case cardSpec == "":
			// A USB webcam is a USB-Audio card too, but with a microphone
			// only: take the first USB card that can play.
			_, err := os.Stat(filepath.Join(procRoot, "asound", fmt.Sprintf("card%d", c.Index), "pcm0p"))
			match = c.USB() && err == nil
		case cardSpec == strconv.Itoa(c.Index), cardSpec == c.ID:
			match = true
		}
		if match {
			return filepath.Join(devRoot, "snd", fmt.Sprintf("pcmC%dD%dp", c.Index, dev)), nil
		}
	}
	if cardSpec == "" {
		return "", fmt.Errorf("%w: no USB sound card with playback among %d cards", ErrNoDevice, len(cards))
	}
	return "", fmt.Errorf("%w: no card %q among %d cards", ErrNoDevice, cardSpec, len(cards))
}

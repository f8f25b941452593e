//go:build !portaudio

package beeper

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/presscap/presscap/beeper/alsa/alsatest"
	"github.com/presscap/presscap/beeper/tone"
)

// TestALSAOutputEndToEnd finds the USB card in a /proc tree and plays
// through the fake PCM device, which sees exactly the rendered samples;
// the card vanishes and comes back under a new number.
func TestALSAOutputEndToEnd(t *testing.T) {
	proc := t.TempDir()
	// cards writes /proc/asound/cards and a playback PCM for each card.
	cards := func(s string) {
		os.RemoveAll(filepath.Join(proc, "asound"))
		for _, l := range strings.Split(s, "\n") {
			var n int
			if _, err := fmt.Sscanf(l, " %d [", &n); err == nil {
				os.MkdirAll(filepath.Join(proc, "asound", fmt.Sprintf("card%d", n), "pcm0p"), 0o755)
			}
		}
		if err := os.WriteFile(filepath.Join(proc, "asound", "cards"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cards(" 0 [Headphones     ]: bcm2835_headpho - bcm2835 Headphones\n                      bcm2835 Headphones\n" +
		" 1 [Device         ]: USB-Audio - USB Audio Device\n                      C-Media USB Audio Device at usb-1.3, full speed\n")
	dev := &alsatest.Device{Rates: []uint32{48000}, Channels: []uint32{2}, Path: "/dev/snd/pcmC1D0p"}
	cfg := DefaultConfig()
	cfg.Volume = 30
	lg := &logRec{}
	b := NewWithOutput(cfg, lg, NewALSAOutput(cfg, proc, "/dev", dev))
	defer b.Close()
	ctx := context.Background()
	if err := b.PlayWait(ctx, Saved); err != nil {
		t.Fatal(err)
	}
	want := tone.Render(Saved.Segments(), 48000, 2, 0.3)
	if got := dev.Samples(); !reflect.DeepEqual(got, want) {
		t.Errorf("device got %d samples, want %d rendered", len(got), len(want))
	}
	names := dev.Names()
	if names[len(names)-3] != "DRAIN" || names[len(names)-1] != "HW_FREE" {
		t.Errorf("requests end with %v, want DRAIN, DROP, HW_FREE", names[len(names)-3:])
	}
	if o, c := dev.OpenCount(); o != 1 || c != 1 {
		t.Errorf("opened %d closed %d: the device must be released after each sound", o, c)
	}

	// Pulled: the card is gone from /proc/asound.
	cards(" 0 [Headphones     ]: bcm2835_headpho - bcm2835 Headphones\n                      bcm2835 Headphones\n")
	dev.SetGone(true)
	if err := b.PlayWait(ctx, Ack); err == nil || !strings.Contains(err.Error(), "no USB sound card") {
		t.Fatalf("PlayWait with the card pulled = %v", err)
	}
	// Back, as card 2.
	cards(" 0 [Headphones     ]: bcm2835_headpho - bcm2835 Headphones\n                      bcm2835 Headphones\n" +
		" 2 [Device         ]: USB-Audio - USB Audio Device\n                      C-Media USB Audio Device at usb-1.3, full speed\n")
	dev.SetGone(false)
	dev.Path = "/dev/snd/pcmC2D0p"
	dev.Reset()
	if err := b.PlayWait(ctx, Fault); err != nil {
		t.Fatalf("card back as card 2: %v", err)
	}
	if got := dev.Samples(); len(got) != 2*tone.Frames(Fault.Segments(), 48000) {
		t.Errorf("after replug the device got %d samples", len(got))
	}
	got := lg.get()
	if len(got) != 2 || !strings.Contains(got[0], "no sound device") || !strings.Contains(got[1], "back") {
		t.Errorf("log = %q, want one 'no sound device' and one 'back'", got)
	}
}

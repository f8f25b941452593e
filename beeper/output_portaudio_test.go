//go:build portaudio

package beeper

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPortaudioNullDevice plays every sound through portaudio and alsa-lib
// into ALSA's null PCM, declared as the default device in a private
// ~/.asoundrc, so the test needs no sound card (Debian: portaudio19-dev).
func TestPortaudioNullDevice(t *testing.T) {
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, ".asoundrc"), []byte("pcm.!default {\n  type null\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", home)
	b := New(DefaultConfig(), nil)
	defer b.Close()
	for _, s := range Sounds() {
		if err := b.PlayWait(context.Background(), s); err != nil {
			t.Fatalf("%v: %v", s, err)
		}
	}
	cfg := DefaultConfig()
	cfg.Device = "no-such-speaker"
	b2 := New(cfg, nil)
	defer b2.Close()
	if err := b2.PlayWait(context.Background(), Ack); err == nil || !strings.Contains(err.Error(), "beeper.device") {
		t.Errorf("unknown device: %v", err)
	}
}

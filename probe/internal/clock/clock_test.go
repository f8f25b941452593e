package clock

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestGokrazySyncIgnoresRestoreStep(t *testing.T) {
	dir := t.TempDir()
	tf := filepath.Join(dir, "ntp-time-at-last-shutdown")
	saved := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	b, _ := saved.MarshalText() // the format gokrazy's ntp writes
	os.WriteFile(tf, b, 0o600)
	g := &GokrazySync{Timefile: tf}
	if g.stepped.Load() {
		t.Fatal("stepped before any step")
	}
	if g.Stepped(saved.Add(2 * time.Second)) {
		t.Fatal("the restore step from the timefile counted as a sync")
	}
	if g.stepped.Load() {
		t.Fatal("restore step marked synced")
	}
	if !g.Stepped(saved.Add(7 * 24 * time.Hour)) {
		t.Fatal("an NTP step did not count")
	}
	if !g.Synced() {
		t.Fatal("Synced false after an NTP step")
	}
	// No timefile (power was pulled, nothing saved): every step is NTP.
	g2 := &GokrazySync{Timefile: filepath.Join(dir, "missing")}
	if !g2.Stepped(time.Now()) {
		t.Fatal("step without a timefile did not count")
	}
}

func TestWatchStopsOnCancel(t *testing.T) {
	g := &GokrazySync{Timefile: "/nonexistent"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Watch(ctx, t.Logf) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("Watch = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not stop")
	}
}

// TestBootIDAt reads the id below a root of the test's own, trimmed, and
// gives "" where that root has none.
func TestBootIDAt(t *testing.T) {
	root := t.TempDir()
	if id := BootIDAt(root); id != "" {
		t.Fatalf("no boot_id file: got %q, want \"\"", id)
	}
	p := filepath.Join(root, "proc/sys/kernel/random/boot_id")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("0b1c-boot\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if id := BootIDAt(root); id != "0b1c-boot" {
		t.Fatalf("got %q, want %q", id, "0b1c-boot")
	}
}

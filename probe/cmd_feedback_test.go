package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = dispatch(context.Background(), env{stdout: &out, stderr: &errb}, args)
	return out.String(), errb.String(), err
}

func TestLEDCommandOnSysfsTree(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "ACT")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, v := range map[string]string{"brightness": "0", "max_brightness": "1", "trigger": "none [mmc0] timer"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err := runCmd(t, "led", "-state", "recording", "-for", "200ms", "-sysfs-root", root)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "recording") || !strings.Contains(out, "steady on") {
		t.Errorf("output %q", out)
	}
	for f, want := range map[string]string{"brightness": "0", "trigger": "mmc0"} {
		if b, _ := os.ReadFile(filepath.Join(dir, f)); string(b) != want {
			t.Errorf("%s after probe led = %q, want %q", f, b, want)
		}
	}
	if _, _, err := runCmd(t, "led", "-state", "disco", "-sysfs-root", root); err == nil || !strings.Contains(err.Error(), `"disco"`) {
		t.Errorf("unknown state: %v", err)
	}
	if _, _, err := runCmd(t, "led", "-state", "booting", "-sysfs-root", filepath.Join(root, "none")); err == nil || !strings.Contains(err.Error(), "leds.sysfs_root") {
		t.Errorf("missing sysfs LED: %v", err)
	}
}

func TestLEDCommandLists(t *testing.T) {
	out, _, err := runCmd(t, "led")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"booting", "recording", "pressed", "saving", "uploading", "fault-no-disk", "fault-disk-full", "fault-no-link", "fault-bad-config", "blinks three times"} {
		if !strings.Contains(out, s) {
			t.Errorf("listing lacks %q:\n%s", s, out)
		}
	}
}

func TestBeepCommandWithoutDevice(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "pcmC9D0p")
	_, errs, err := runCmd(t, "beep", "-device", missing)
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("beep on a missing device = %v, want an error naming it", err)
	}
	// The error is said once, by main; nothing else on stderr repeats it.
	if errs != "" {
		t.Errorf("beep on a missing device also wrote %q", errs)
	}
	// A file that is not a PCM device is refused with a clear error.
	_, _, err = runCmd(t, "beep", "-device", "/dev/null", "-sound", "fault")
	if err == nil || !strings.Contains(err.Error(), "not an ALSA PCM device") {
		t.Errorf("beep on /dev/null = %v", err)
	}
	if _, _, err := runCmd(t, "beep", "-sound", "moo"); err == nil || !strings.Contains(err.Error(), `"moo"`) {
		t.Errorf("unknown sound: %v", err)
	}
	if _, _, err := runCmd(t, "beep", "-volume", "300"); err == nil || !strings.Contains(err.Error(), "beeper.volume") {
		t.Errorf("bad volume: %v", err)
	}
}

package testtool

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Chromium is headless Chromium for tests that look at a page as a person
// would: the DOM it built and a screenshot. Tests run as root, hence
// --no-sandbox.
type Chromium struct {
	t       testing.TB
	bin     string
	profile string
	size    string
}

// NewChromium finds chromium (Debian package chromium) and gives it a
// window of width×height pixels and a profile of its own.
func NewChromium(t testing.TB, width, height int) *Chromium {
	t.Helper()
	return &Chromium{t: t, bin: Path(t, "chromium", "chromium"),
		profile: filepath.Join(t.TempDir(), "profile"), size: fmt.Sprintf("%d,%d", width, height)}
}

// Browse loads url once with the extra args (--dump-dom,
// --screenshot=FILE) and returns what Chromium printed and logged.
func (c *Chromium) Browse(url string, args ...string) (out []byte, logs string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr",
		"--user-data-dir=" + c.profile, "--window-size=" + c.size}, args...)
	cmd := exec.CommandContext(ctx, c.bin, append(args, url)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return out, stderr.String()
}

// Package testtool holds what many packages' tests need alike: finding
// the external programs they use as oracles, checking that they run as
// root, and waiting for a condition. CI installs the Debian packages of
// .ci/packages.txt and runs as root, so a missing program or privilege is
// a test failure that says what to install. The one exception is -short
// (make check: without root, in seconds): there a test needing root, a
// VM or a missing program skips.
package testtool

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// sbin are searched after PATH: a root shell without a login environment
// often lacks them, and sfdisk, mkfs.ext4, losetup and friends live there.
var sbin = []string{"/usr/sbin", "/sbin", "/usr/bin"}

// Path returns the path of the program name, failing the test with the
// Debian package pkg to install when it is on neither PATH nor an sbin
// directory (under -short it skips the test instead).
func Path(t testing.TB, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range sbin {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if testing.Short() {
		t.Skipf("-short: %s not found (Debian package %s)", name, pkg)
	}
	t.Fatalf("%s not found: install the Debian package %s", name, pkg)
	return ""
}

// Root fails the test unless it runs as root; what says what needs it.
// Under -short it skips the test even as root, so that make check runs
// the same tests for root and anyone else.
func Root(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: %s needs root", what)
	}
	if uid := os.Geteuid(); uid != 0 {
		t.Fatalf("%s needs root (running as uid %d)", what, uid)
	}
}

// NotShort skips the test under -short; what says what takes it out of
// make check (a VM, an image build, minutes of real time).
func NotShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: %s", what)
	}
}

// WaitFor polls cond every 5 ms until it holds, failing the test with
// what after timeout.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

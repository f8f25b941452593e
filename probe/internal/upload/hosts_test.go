package upload

import (
	"os"
	"slices"
	"testing"
)

// TestFileHosts: the upload sends files under the probe's name now, the
// configured hostname, the system's and presscap-<id8> of the fleet id,
// each once and none empty.
func TestFileHosts(t *testing.T) {
	sys, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	if sys == "probe-a" || sys == "presscap-89abcdef" {
		t.Fatalf("the system's hostname %q is one of the test's", sys)
	}
	got := FileHosts("probe-a", "probe-a", "0123456789abcdef")
	want := []string{"probe-a", sys, "presscap-89abcdef"}
	if !slices.Equal(got, want) {
		t.Errorf("FileHosts(probe-a, probe-a, id) = %v, want %v", got, want)
	}
	if got := FileHosts("", "", ""); !slices.Equal(got, []string{sys}) {
		t.Errorf("with nothing configured: %v, want only the system's %q", got, sys)
	}
}

package upload_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/presscap/presscap/internal/testing/sshdtest"
	"github.com/presscap/presscap/probe/internal/upload"
)

// TestUploadSendsOnlyProducedNames: the queue is on the customer's disk.
// A file there that the probe did not name, or named with another host
// part than its own, is not sent and stays in place; the files left are
// logged in one line, a few by name and the rest counted, once however
// many runs see them, and again only if one goes and comes back.
func TestUploadSendsOnlyProducedNames(t *testing.T) {
	r := newRig(t, sshdtest.Options{})
	const ours = "probe_20261127T020000.000Z_all.pcap"
	const labelled = "probe-T-4711_20261127T030000.000Z_all.pcap" // after the label was learned
	const man = "probe_20261127T020000.000Z_manifest.json"
	data := r.put(t, ours, 1000)
	r.put(t, labelled, 100)
	r.put(t, man, 100)
	theirs := []string{"holiday.jpg", "otherprobe_20261127T020000.000Z_all.pcap", "passwords.txt",
		"probe.evil_20261127T020000.000Z_all.pcap", "probe_20261127T020000.000Z_all.pcap.exe"}
	for _, n := range theirs {
		r.put(t, n, 100)
	}
	var mu sync.Mutex
	var logged []string
	u, err := upload.New(r.cfg, r.queueDir, r.stateDir, nil, nil, func(format string, args ...any) {
		mu.Lock()
		logged = append(logged, fmt.Sprintf(format, args...))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	u.SetHosts("probe", "gokrazy")
	// leftLines runs an upload and returns its lines about files left.
	leftLines := func() []string {
		t.Helper()
		mu.Lock()
		n := len(logged)
		mu.Unlock()
		if err := u.UploadNow(context.Background()); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, l := range logged[n:] {
			if strings.Contains(l, "in the queue: not files this probe wrote") {
				out = append(out, l)
			}
		}
		return out
	}
	if l := leftLines(); len(l) != 1 || !strings.Contains(l[0], `"holiday.jpg", "otherprobe_20261127T020000.000Z_all.pcap", "passwords.txt" and 2 more`) {
		t.Errorf("first run logged %q, want one line naming three files and counting 2 more", l)
	}
	if l := leftLines(); len(l) != 0 {
		t.Errorf("second run logged %q again", l)
	}
	if got := r.remote(t); !reflect.DeepEqual(got, []string{labelled, ours, man}) {
		t.Errorf("server holds %v, want only %s, %s and %s", got, ours, labelled, man)
	}
	assertFile(t, filepath.Join(r.remoteDir, ours), data)
	for _, n := range theirs {
		if _, err := os.Stat(filepath.Join(r.queueDir, n)); err != nil {
			t.Errorf("%s: %v, want it left in the queue", n, err)
		}
	}
	// A name that went is forgotten: back again, it is logged again.
	os.Remove(filepath.Join(r.queueDir, theirs[0]))
	if l := leftLines(); len(l) != 0 {
		t.Errorf("run after a removal logged %q", l)
	}
	r.put(t, theirs[0], 10)
	if l := leftLines(); len(l) != 1 || !strings.Contains(l[0], `"holiday.jpg" in the queue`) {
		t.Errorf("run after it came back logged %q, want one line naming it alone", l)
	}
}

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

	"github.com/presscap/presscap/probe/upload"
	"github.com/presscap/presscap/probe/upload/sshdtest"
)

// TestUploadSendsOnlyProducedNames: the queue is on the customer's disk.
// A file there that the probe did not name is not sent, stays in place and
// is logged once however many runs see it.
func TestUploadSendsOnlyProducedNames(t *testing.T) {
	r := newRig(t, sshdtest.Options{})
	const ours = "probe_20261127T020000.000Z_all.pcap"
	const man = "probe_20261127T020000.000Z_manifest.json"
	data := r.put(t, ours, 1000)
	r.put(t, man, 100)
	theirs := []string{"holiday.jpg", "passwords.txt", "probe_20261127T020000.000Z_all.pcap.exe"}
	for _, n := range theirs {
		r.put(t, n, 100)
	}
	var mu sync.Mutex
	var logged []string
	u, err := upload.New(r.cfg, r.queueDir, r.stateDir, nil, func(format string, args ...any) {
		mu.Lock()
		logged = append(logged, fmt.Sprintf(format, args...))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := u.UploadNow(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.remote(t); !reflect.DeepEqual(got, []string{ours, man}) {
		t.Errorf("server holds %v, want only %s and %s", got, ours, man)
	}
	assertFile(t, filepath.Join(r.remoteDir, ours), data)
	for _, n := range theirs {
		if _, err := os.Stat(filepath.Join(r.queueDir, n)); err != nil {
			t.Errorf("%s: %v, want it left in the queue", n, err)
		}
		count := 0
		mu.Lock()
		for _, l := range logged {
			if strings.Contains(l, n+" in the queue is not a file the probe wrote") {
				count++
			}
		}
		mu.Unlock()
		if count != 1 {
			t.Errorf("%s logged %d times over two runs, want once", n, count)
		}
	}
}

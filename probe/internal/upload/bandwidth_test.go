package upload_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/sshdtest"
	"github.com/presscap/presscap/probe/internal/upload"
)

// TestBandwidthLimitOnTheWire uploads 3 MiB at 8000 kbit/s (1 MB/s) to the
// real sshd. Only lower bounds on time are asserted (they cannot flake on a
// slow machine): the run takes at least (size − burst)/rate, and every
// sample of the .part on the server during the run holds at most
// rate·elapsed + burst bytes, so the limit holds all along, not on average.
func TestBandwidthLimitOnTheWire(t *testing.T) {
	t.Parallel()
	const (
		kbps = 8000
		size = 3 << 20
		name = "probeA_20261127T020000.000Z_all.pcap"
	)
	rate := float64(kbps) * 1000 / 8 // bytes/s
	burst := float64(upload.RateBurst(rate))
	r := newRig(t, sshdtest.Options{})
	data := r.put(t, name, size)
	r.cfg.BandwidthLimitKbps = kbps
	u, _ := r.newUploader(t, nil)

	type sample struct {
		at   time.Duration
		size int64
	}
	var samples []sample
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- u.UploadNow(context.Background()) }()
	part := filepath.Join(r.remoteDir, name+".part")
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-tick.C:
			st, serr := os.Stat(part)
			// Taken after the stat: the bound below is then looser, never tighter.
			at := time.Since(start)
			if serr != nil {
				continue // not created yet, or renamed
			}
			samples = append(samples, sample{at, st.Size()})
			if limit := rate*at.Seconds() + burst; float64(st.Size()) > limit {
				t.Errorf("after %v the server held %d bytes, more than %.0f (rate %.0f B/s · elapsed + burst %.0f)", at, st.Size(), limit, rate, burst)
			}
		}
	}
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("UploadNow: %v\nsshd log:\n%s", err, r.srv.Log())
	}
	assertFile(t, filepath.Join(r.remoteDir, name), data)
	if got := r.remote(t); !reflect.DeepEqual(got, []string{name}) {
		t.Fatalf("server holds %v, want just %s", got, name)
	}
	lower := time.Duration((size - burst) / rate * float64(time.Second))
	if elapsed < lower {
		t.Fatalf("%d bytes at %d kbit/s took %v, below the limiter's minimum %v", size, kbps, elapsed, lower)
	}
	// Very generous: catches only a limit taken in the wrong unit (bytes
	// for bits would be 8× slower, 25 s).
	if elapsed > 20*time.Second {
		t.Fatalf("%d bytes at %d kbit/s took %v, far beyond the %v the limit allows", size, kbps, elapsed, time.Duration(size/rate*float64(time.Second)))
	}
	t.Logf("%d bytes at %d kbit/s (%.0f B/s, burst %.0f B): %v, minimum %v, ideal %v; effective %.0f B/s = %.3f of the limit",
		size, kbps, rate, burst, elapsed.Round(time.Millisecond), lower.Round(time.Millisecond),
		time.Duration(size/rate*float64(time.Second)).Round(time.Millisecond), size/elapsed.Seconds(), size/elapsed.Seconds()/rate)
	// The rate on the server between the first and the last sample.
	if len(samples) < 10 {
		t.Fatalf("only %d samples of the .part during a %v upload", len(samples), elapsed)
	}
	a, b := samples[0], samples[len(samples)-1]
	if b.at > a.at {
		wire := float64(b.size-a.size) / (b.at - a.at).Seconds()
		t.Logf("on the server: %d → %d bytes between %v and %v: %.0f B/s = %.3f of the limit (%d samples)",
			a.size, b.size, a.at.Round(time.Millisecond), b.at.Round(time.Millisecond), wire, wire/rate, len(samples))
	}
}

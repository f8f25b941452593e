package export

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presscap/presscap/probe/internal/window"
	"github.com/presscap/presscap/ringfs"
	"golang.org/x/sys/unix"
)

// BenchmarkLongestBefore measures the longest `before` a ring saves whole
// while a line fills it at a fixed rate, as a fraction of the ring's span
// (newest − oldest packet) at the press: a writer appends packets with
// real-time timestamps at the rate, as the capture does; a press at a
// random moment opens a window of before = fraction × span and after, whose
// files are written as the service's follower writes them (Open, a step
// every FollowStep, durable every FollowSync, at idle disk priority) and
// finished after its end. A fraction counts if every press of it saved
// whole (not truncated). It reports the longest such fraction, and how far
// the writer ever fell behind its schedule (what the capture would have to
// buffer), against the same while the ring filled with no save running
// (idle-writer-lag-ms). Run with -benchtime 1x; it takes about a minute.
//
// BENCH_DISK_MBPS=N (root, cgroup v1 blkio) caps this process's direct and
// read I/O on the ring's disk at N MB/s each way: a slow USB disk.
func BenchmarkLongestBefore(b *testing.B) {
	limit := 0
	if v := os.Getenv("BENCH_DISK_MBPS"); v != "" {
		var err error
		if limit, err = strconv.Atoi(v); err != nil || limit <= 0 {
			b.Fatalf("BENCH_DISK_MBPS=%q: want a positive number of MB/s", v)
		}
	}
	for _, rate := range []struct {
		name string
		pps  int
		size int // stored bytes per packet
		ring int64
	}{{"100kpps", 100_000, 375, 256 << 20}, {"400kpps", 400_000, 128, 256 << 20}} {
		b.Run(rate.name, func(b *testing.B) {
			dir := b.TempDir()
			if limit > 0 {
				throttleDisk(b, dir, limit)
			}
			ring, err := ringfs.Create(filepath.Join(dir, "ring"), ringfs.Options{Size: rate.ring})
			if err != nil {
				b.Fatal(err)
			}
			defer ring.Close()
			link, err := ring.AddLink(ringfs.Link{Name: "eth0", LinkType: 1, SnapLen: uint32(rate.size)})
			if err != nil {
				b.Fatal(err)
			}
			in, _ := ring.Info()
			b.Logf("ring %d MiB: %d segments of %d MiB; %d packets/s of %d bytes", rate.ring>>20, in.Segments, in.SegmentSize>>20, rate.pps, rate.size)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var maxLag atomic.Int64
			wg.Add(1)
			go func() {
				defer wg.Done()
				paceWriter(b, ring, link, rate.pps, rate.size, stop, &maxLag)
			}()
			defer func() { close(stop); wg.Wait() }()
			// Until the ring has wrapped: its oldest packet moved on.
			first := int64(0)
			for {
				time.Sleep(200 * time.Millisecond)
				in, err := ring.Info()
				if err != nil {
					b.Fatal(err)
				}
				if first == 0 {
					first = in.Oldest
				} else if in.Oldest > first {
					break
				}
			}
			// The writer's delays with no save running, for comparison.
			idle := float64(maxLag.Swap(0)) / 1e6
			specs := []Spec{{Name: "all"}}
			for _, after := range []time.Duration{500 * time.Millisecond, 2 * time.Second} {
				b.Run(fmt.Sprintf("after=%v", after), func(b *testing.B) {
					longest := 0.0
					var spans []time.Duration
					for _, frac := range []float64{0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1} {
						whole := true
						for trial := range 2 {
							// A random phase against the writer's segment switches.
							time.Sleep(time.Duration(rand.Int64N(int64(300 * time.Millisecond))))
							ok, span := pressAndSave(b, ring, specs, filepath.Join(dir, fmt.Sprintf("out-%v-%d", frac, trial)), frac, after)
							spans = append(spans, span)
							whole = whole && ok
						}
						if !whole {
							break
						}
						longest = frac
					}
					b.ReportMetric(longest, "longest-whole-before/span")
					b.ReportMetric(float64(maxLag.Swap(0))/1e6, "max-writer-lag-ms")
					b.ReportMetric(idle, "idle-writer-lag-ms")
					b.Logf("spans at the presses: %v", spans)
				})
			}
		})
	}
}

// paceWriter appends pps packets a second, each stamped with the time it
// is due, until stop; maxLag keeps the largest delay of an append behind
// its due time.
func paceWriter(b *testing.B, ring *ringfs.Ring, link uint16, pps, size int, stop chan struct{}, maxLag *atomic.Int64) {
	data := make([]byte, size)
	start := time.Now()
	var n int64
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		due := int64(time.Since(start)) * int64(pps) / int64(time.Second)
		first := time.Duration(n * int64(time.Second) / int64(pps)) // the batch's oldest due time
		for ; n < due; n++ {
			at := start.Add(time.Duration(n * int64(time.Second) / int64(pps)))
			if err := ring.Append(ringfs.Record{Time: at.UnixNano(), Link: link, OrigLen: uint32(size), Data: data}); err != nil {
				b.Error(err)
				return
			}
		}
		if lag := int64(time.Since(start) - first); lag > maxLag.Load() {
			maxLag.Store(lag) // the oldest packet of the batch waited this long
		}
	}
}

// pressAndSave presses now with before = frac × the ring's span and saves
// the window the way the service's follower does; it says whether the save
// was whole, and the span.
func pressAndSave(b *testing.B, ring *ringfs.Ring, specs []Spec, dir string, frac float64, after time.Duration) (bool, time.Duration) {
	in, err := ring.Info()
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	span := time.Duration(in.Newest - in.Oldest)
	w := &window.Window{ID: 1, Presses: []window.PressInfo{{Time: now, Synced: true}},
		From: now.Add(-time.Duration(frac * float64(span))), To: now.Add(after)}
	done := make(chan bool)
	go func() {
		runtime.LockOSThread()
		_ = IOPrioIdle()
		c, err := Open(ring, w, specs, "bench", dir, nil)
		if err != nil {
			b.Error(err)
			done <- false
			return
		}
		synced := time.Now()
		for time.Now().Before(w.To.Add(200 * time.Millisecond)) {
			if err := c.Step(context.Background(), ring, w.To, false); err != nil {
				b.Error(err)
			}
			if time.Since(synced) >= FollowSync {
				synced = time.Now()
				if _, err := c.Sync(); err != nil {
					b.Error(err)
				}
			}
			time.Sleep(FollowStep)
		}
		if err := c.Step(context.Background(), ring, w.To, true); err != nil {
			b.Error(err)
		}
		whole := !c.st.Truncated
		if _, err := c.Finish(nil); err != nil {
			b.Error(err)
		}
		done <- whole
	}()
	ok := <-done
	os.RemoveAll(dir)
	return ok, span
}

// throttleDisk moves this process into a new blkio cgroup that caps its
// reads and direct writes on dir's disk at mbps MB/s, until b ends.
func throttleDisk(b *testing.B, dir string, mbps int) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		b.Fatal(err)
	}
	const root = "/sys/fs/cgroup/blkio"
	cg := filepath.Join(root, "presscap-bench-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		b.Fatalf("blkio cgroup (needs root and cgroup v1 blkio): %v", err)
	}
	rule := fmt.Sprintf("%d:%d %d", unix.Major(st.Dev), unix.Minor(st.Dev), mbps*1_000_000)
	for _, f := range []string{"blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device"} {
		if err := os.WriteFile(filepath.Join(cg, f), []byte(rule), 0); err != nil {
			os.Remove(cg)
			b.Fatalf("%s %q: %v", f, rule, err)
		}
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), pid, 0); err != nil {
		os.Remove(cg)
		b.Fatal(err)
	}
	b.Cleanup(func() {
		os.WriteFile(filepath.Join(root, "cgroup.procs"), pid, 0)
		os.Remove(cg)
	})
	b.Logf("disk %d:%d capped at %d MB/s", unix.Major(st.Dev), unix.Minor(st.Dev), mbps)
}

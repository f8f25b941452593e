package capture

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/internal/testing/testtool"
)

// waitResult is what a WaitWritten running in the background saw.
type waitResult struct {
	err     error
	records int // what the sink held when WaitWritten returned
}

// WaitWritten with a stalled sink: the frames sit in the capture's batches
// (the socket handed them over long ago), so WaitWritten must not return
// until the sink is released and holds every one of them.
func TestWaitWrittenStalledSink(t *testing.T) {
	p := netnstest.NewPair(t)
	sink := newMemSink()
	release := make(chan struct{})
	sink.stall = release
	c, stop := startCapture(t, Config{Links: []Link{{Name: p.Host, ID: 5}}}, sink)
	unstall := unstaller(t, sink, release)
	fs := netnstest.Frames(300)
	if err := p.NewSender(t).Send(fs...); err != nil {
		t.Fatal(err)
	}
	end := time.Now() // after the last frame was sent
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res := make(chan waitResult, 1)
	go func() {
		err := c.WaitWritten(ctx, end)
		res <- waitResult{err, len(sink.records(5))}
	}()
	// Far longer than a quiet link needs (a few hundred ms, see
	// WrittenUntil): the wait is held by the sink, not by the socket.
	time.Sleep(2 * time.Second)
	select {
	case r := <-res:
		t.Fatalf("WaitWritten returned (%v) while the sink was stalled, holding %d of %d frames", r.err, r.records, len(fs))
	default:
	}
	if w := c.WrittenUntil(); !w.Before(end) {
		t.Fatalf("WrittenUntil %v is not before the end %v while the sink is stalled", w, end)
	}
	unstall()
	var r waitResult
	select {
	case r = <-res:
	case <-time.After(30 * time.Second):
		t.Fatalf("WaitWritten did not return 30s after the sink was released")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.records != len(fs) {
		t.Fatalf("WaitWritten returned with %d of %d frames in the sink", r.records, len(fs))
	}
	stop()
	got := sink.records(5)
	if len(got) != len(fs) {
		t.Fatalf("sink holds %d records, sent %d", len(got), len(fs))
	}
	checkSame(t, got, fs)
	if st := c.Stats()[0]; st.Dropped() != 0 || st.Written != uint64(len(fs)) {
		t.Errorf("stats %+v: want every frame written, no drops", st)
	}
}

// An idle link, a link set down, and a link unplugged hold nothing: the
// wait for a time just past returns promptly. The future is never written.
func TestWaitWrittenIdleDownGone(t *testing.T) {
	p := netnstest.NewPair(t)
	c, stop := startCapture(t, Config{Links: []Link{{Name: p.Host, ID: 1}}}, newMemSink())
	defer stop()
	wait := func(what string) {
		t.Helper()
		t0 := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.WaitWritten(ctx, t0); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s: WaitWritten(now) returned after %v", what, time.Since(t0).Round(time.Millisecond))
	}
	wait("idle link")

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	err := c.WaitWritten(ctx, time.Now().Add(time.Hour))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitWritten(an hour ahead) = %v, want the context's deadline", err)
	}

	p.SetUp(t, false)
	wait("link set down")

	p.Unplug(t)
	testtool.WaitFor(t, "the capture to notice "+p.Host+" disappear", 20*time.Second, func() bool { return !c.Stats()[0].Open })
	t0 := time.Now()
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.WaitWritten(ctx, t0); err != nil {
		t.Fatalf("unplugged link: %v", err)
	}
}

// WaitWritten on a busy link: traffic goes on past t, so the socket never
// falls idle and only the packets read after t can prove that everything
// before t was read. With the sink stalled WaitWritten must wait; when it
// returns, the sink holds every packet the kernel timestamped up to t.
func TestWaitWrittenBusyLink(t *testing.T) {
	p := netnstest.NewPair(t)
	sink := newMemSink()
	c, stop := startCapture(t, Config{Links: []Link{{Name: p.Host, ID: 8}}}, sink)
	release := make(chan struct{})
	unstall := unstaller(t, sink, release)
	s := p.NewSender(t)
	fs := netnstest.Frames(400)
	quit, sent := make(chan struct{}), make(chan error, 1)
	var quitOnce sync.Once
	stopSending := func() { quitOnce.Do(func() { close(quit) }) }
	t.Cleanup(stopSending) // a failed test stops the sender too
	go func() {
		for i := 0; ; i++ {
			select {
			case <-quit:
				sent <- nil
				return
			case <-time.After(time.Millisecond):
			}
			if err := s.Send(fs[i%len(fs)]); err != nil {
				sent <- err
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	sink.mu.Lock()
	sink.stall = release
	sink.mu.Unlock()
	at := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The goroutine reports through res only: it may outlive a failed test.
	type busyResult struct {
		err error
		ts  []int64 // the sink's records when WaitWritten returned
	}
	res := make(chan busyResult, 1)
	go func() {
		err := c.WaitWritten(ctx, at)
		var ts []int64
		for _, r := range sink.records(8) {
			ts = append(ts, r.Time)
		}
		res <- busyResult{err, ts}
	}()
	time.Sleep(1500 * time.Millisecond)
	select {
	case <-res:
		t.Fatalf("WaitWritten returned while the sink was stalled")
	default:
	}
	unstall()
	var r busyResult
	select {
	case r = <-res:
	case <-time.After(30 * time.Second):
		t.Fatalf("WaitWritten did not return 30s after the sink was released")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	atReturn := r.ts
	stopSending()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	waitQuiet(t, c)
	stop()
	st := c.Stats()[0]
	if st.Dropped() != 0 || st.Seen != st.Written {
		t.Fatalf("stats %+v: want no drops", st)
	}
	before := 0
	for _, r := range sink.records(8) {
		if r.Time <= at.UnixNano() {
			before++
		}
	}
	got := 0
	for _, ts := range atReturn {
		if ts <= at.UnixNano() {
			got++
		}
	}
	if before < 100 || got != before {
		t.Fatalf("when WaitWritten returned the sink held %d of the %d packets timestamped up to t", got, before)
	}
	if len(atReturn) == len(sink.records(8)) {
		t.Errorf("traffic did not go on after WaitWritten returned (%d packets): the busy case was not exercised", len(atReturn))
	}
	t.Logf("%d packets up to t, %d in the sink when WaitWritten returned, %d in all", before, len(atReturn), len(sink.records(8)))
}

// unstaller returns the function that ends sink's stall by closing
// release, once. It is also a cleanup, registered after startCapture's so
// that it runs before the capture stops: a failed test still stops.
func unstaller(t *testing.T, sink *memSink, release chan struct{}) func() {
	var once sync.Once
	unstall := func() {
		once.Do(func() {
			sink.mu.Lock()
			sink.stall = nil
			sink.mu.Unlock()
			close(release)
		})
	}
	t.Cleanup(unstall)
	return unstall
}

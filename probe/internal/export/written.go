package export

import (
	"context"
	"errors"
	"time"

	"github.com/presscap/presscap/probe/internal/capture"
)

// Written is how far the capture has handed packets to the ring
// (capture.Capture).
type Written interface {
	// WaitWritten waits until every packet up to t is in the ring; when
	// ctx ends first its error is a *capture.NotWrittenError.
	WaitWritten(ctx context.Context, t time.Time) error
	WrittenUntil() time.Time
}

// WaitWritten waits, at most wait, until capt has handed every packet up
// to end to the ring, so that a window is not cut before its last packets
// are in it (a disk that stalls holds them in the capture's buffer). It
// returns how far the capture fell short if it did not get there, or else
// how long it waited. A negative wait does not wait, only reports. At
// shutdown (ctx done) the wait ends at once, which says nothing about the
// disk: no lag is reported then.
func WaitWritten(ctx context.Context, capt Written, end time.Time, wait time.Duration) (lag *CaptureLag, waited time.Duration) {
	start := time.Now()
	var until time.Time
	if wait > 0 {
		wctx, cancel := context.WithTimeout(ctx, wait)
		err := capt.WaitWritten(wctx, end)
		cancel()
		var short *capture.NotWrittenError
		switch {
		case err == nil:
			return nil, time.Since(start)
		case ctx.Err() != nil:
			return nil, 0
		case errors.As(err, &short):
			until = short.Until
		default:
			until = capt.WrittenUntil()
		}
	} else {
		if ctx.Err() != nil {
			return nil, 0
		}
		until = capt.WrittenUntil()
	}
	if !until.Before(end) {
		return nil, 0
	}
	return &CaptureLag{WrittenUntil: until.UTC(), Behind: end.Sub(until).Round(time.Millisecond).String(),
		Waited: time.Since(start).Round(time.Millisecond).String()}, 0
}

package upload

import (
	"context"
	"io"
	"time"
)

// rateLimitedReader paces reads to a byte rate. The SFTP writer pulls from it,
// so the limit holds on the wire (plus a few percent of SSH framing).
//
// Burst: a read is let through once every byte read before it is due at the
// rate, counted from the first read, and a read returns at most a tenth of a
// second's worth (at least 512 bytes). So after t seconds at most
// rate·t + rateBurst(rate) bytes have passed, and n bytes plus the final EOF
// read take at least n/rate.
type rateLimitedReader struct {
	ctx         context.Context
	r           io.Reader
	bytesPerSec float64
	start       time.Time
	sent        int64
}

func newRateLimitedReader(ctx context.Context, r io.Reader, kbps int64) io.Reader {
	if kbps <= 0 {
		return r
	}
	return &rateLimitedReader{ctx: ctx, r: r, bytesPerSec: float64(kbps) * 1000 / 8}
}

func (l *rateLimitedReader) Read(p []byte) (int, error) {
	if l.start.IsZero() {
		l.start = time.Now()
	}
	// Small reads keep the pacing smooth at low rates.
	if max := rateBurst(l.bytesPerSec); len(p) > max {
		p = p[:max]
	}
	// Wait until the bytes already sent are due at this rate.
	due := l.start.Add(time.Duration(float64(l.sent) / l.bytesPerSec * float64(time.Second)))
	if wait := time.Until(due); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-l.ctx.Done():
			t.Stop()
			return 0, l.ctx.Err()
		}
	}
	n, err := l.r.Read(p)
	l.sent += int64(n)
	return n, err
}

// rateBurst is the largest read the limiter passes at bytesPerSec: the most
// it can be ahead of the average rate.
func rateBurst(bytesPerSec float64) int {
	return max(int(bytesPerSec/10), 512)
}

package config

import (
	"fmt"
	"math"
	"time"

	"github.com/presscap/presscap/probe/internal/capture"
	"github.com/presscap/presscap/probe/internal/filter"
	"github.com/presscap/presscap/ringfs"
)

func (r Ring) validate() Errors {
	var es Errors
	if err := relPath(r.Dir, false); err != nil {
		es.AddErr("dir", "bad path", err)
	}
	// The ring refuses less at creation; the service would only ever
	// report a full disk.
	if r.Size < ringfs.MinSize {
		es.Add("size", "%v is too small (at least %v)", r.Size, Size(ringfs.MinSize))
	}
	if r.MaxAge < 0 {
		es.Add("max_age", "must not be negative")
	}
	if r.ExpectedMbps <= 0 {
		es.Add("expected_mbps", "must be positive")
	}
	if r.Snaplen != 0 && r.Snaplen < 64 {
		es.Add("snaplen", "%d is too small to hold the headers (at least 64, or 0 for whole packets)", r.Snaplen)
	}
	rulesOK := true
	for i, rule := range r.Rules {
		f := fmt.Sprintf("rules[%d]", i)
		if fld, problem := rule.Check(); problem != "" {
			if fld != "" {
				f += "." + fld
			}
			es.Add(f, "%s", problem)
			rulesOK = false
		} else if _, err := filter.NewMatcher(rule.Filter); err != nil {
			es.AddErr(f+".filter", "does not compile", err)
			rulesOK = false
		}
	}
	if len(r.Rules) > 0 && rulesOK && len(es) == 0 {
		if prog, _, err := capture.CompileRules(r.Rules, r.Snaplen); err != nil {
			es.AddErr("rules", "do not compile together", err)
		} else if err := capture.CheckProgram(prog); err != nil {
			es.AddErr("rules", "too long together", err)
		}
	}
	return es
}

// History is how far back the ring reaches at the expected rate. A rate
// so low that the span overflows a Duration reaches as far back as any
// Duration does.
func (c Config) History() time.Duration {
	if c.Ring.ExpectedMbps <= 0 {
		return 0
	}
	ns := float64(c.Ring.Size) * 8 / (c.Ring.ExpectedMbps * 1e6) * 1e9
	h := time.Duration(math.MaxInt64)
	if ns < float64(math.MaxInt64) {
		h = time.Duration(ns)
	}
	if c.Ring.MaxAge > 0 && c.Ring.MaxAge.D() < h {
		h = c.Ring.MaxAge.D()
	}
	return h
}

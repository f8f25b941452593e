package testtool

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

// outcome records whether a helper skipped or failed the test it was given,
// stopping the helper there as the testing package would.
type outcome struct {
	testing.TB
	skipped, failed string
}

type stop struct{}

func (o *outcome) Helper() {}
func (o *outcome) Skipf(format string, args ...any) {
	o.skipped = fmt.Sprintf(format, args...)
	panic(stop{})
}
func (o *outcome) Fatalf(format string, args ...any) {
	o.failed = fmt.Sprintf(format, args...)
	panic(stop{})
}

func run(short bool, helper func(t testing.TB)) (o outcome) {
	old := flag.Lookup("test.short").Value.String()
	flag.Set("test.short", fmt.Sprint(short))
	defer flag.Set("test.short", old)
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stop); !ok {
				panic(r)
			}
		}
	}()
	helper(&o)
	return o
}

// TestMissingToolFailsUnlessShort: a missing program fails the test
// naming its Debian package; only under -short does it skip.
func TestMissingToolFailsUnlessShort(t *testing.T) {
	missing := func(t testing.TB) { Path(t, "presscap-no-such-tool", "presscap-pkg") }
	if o := run(false, missing); o.failed == "" || o.skipped != "" {
		t.Errorf("without -short: failed %q, skipped %q; want a failure", o.failed, o.skipped)
	} else if want := "install the Debian package presscap-pkg"; !strings.Contains(o.failed, want) {
		t.Errorf("failure %q does not say %q", o.failed, want)
	}
	if o := run(true, missing); o.skipped == "" || o.failed != "" {
		t.Errorf("under -short: failed %q, skipped %q; want a skip", o.failed, o.skipped)
	}
	if o := run(true, func(t testing.TB) { Path(t, "sh", "dash") }); o.skipped != "" || o.failed != "" {
		t.Errorf("a present program under -short: failed %q, skipped %q", o.failed, o.skipped)
	}
}

// TestRootSkipsOnlyUnderShort: under -short a test needing root skips
// whoever runs it (make check is the same for root and others); without
// it a test run by anyone else fails.
func TestRootSkipsOnlyUnderShort(t *testing.T) {
	root := func(t testing.TB) { Root(t, "this test") }
	if o := run(true, root); o.skipped == "" || o.failed != "" {
		t.Errorf("under -short: failed %q, skipped %q; want a skip", o.failed, o.skipped)
	}
	o := run(false, root)
	if os.Geteuid() == 0 {
		if o.skipped != "" || o.failed != "" {
			t.Errorf("as root without -short: failed %q, skipped %q", o.failed, o.skipped)
		}
	} else if o.failed == "" || o.skipped != "" {
		t.Errorf("as uid %d without -short: failed %q, skipped %q; want a failure", os.Geteuid(), o.failed, o.skipped)
	}
	if o := run(true, func(t testing.TB) { NotShort(t, "a VM") }); o.skipped == "" {
		t.Error("NotShort did not skip under -short")
	}
	if o := run(false, func(t testing.TB) { NotShort(t, "a VM") }); o.skipped != "" || o.failed != "" {
		t.Errorf("NotShort without -short: failed %q, skipped %q", o.failed, o.skipped)
	}
}

// TestLogMatching: Matching returns the lines containing the string, in
// order; String joins them all.
func TestLogMatching(t *testing.T) {
	var l Log
	l.Logf("removed stale %s", "a.part")
	l.Logf("uploaded %d files", 2)
	l.Logf("removed stale %s", "b.part")
	if got := l.Matching("stale"); len(got) != 2 || got[0] != "removed stale a.part" || got[1] != "removed stale b.part" {
		t.Errorf("Matching(stale) = %q", got)
	}
	if got := l.Matching("nothing"); got != nil {
		t.Errorf("Matching(nothing) = %q, want none", got)
	}
	if got, want := l.String(), "removed stale a.part\nuploaded 2 files\nremoved stale b.part"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

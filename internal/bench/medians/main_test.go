package main

import (
	"strings"
	"testing"
)

// TestMediansOfRuns: every input line passes through, then one summary per
// benchmark with each unit's median and range over its runs; other lines
// (PASS, ok, log output) are not taken for runs.
func TestMediansOfRuns(t *testing.T) {
	in := `goos: linux
BenchmarkFilter5/interleaved-2   20000   1.5 ns/op   30 matcher-ns/pkt   45 libpcap-vm-ns/pkt   0.67 ratio
BenchmarkFilter5/interleaved-2   20000   1.5 ns/op   16 matcher-ns/pkt   33 libpcap-vm-ns/pkt   0.48 ratio
BenchmarkFilter5/interleaved-2   20000   1.5 ns/op   28 matcher-ns/pkt   40 libpcap-vm-ns/pkt   0.70 ratio
BenchmarkOther-2   10   100 ns/op
    bench_test.go:12: Benchmark note 1 2 3
PASS
ok  	github.com/presscap/presscap/probe/internal/filter	3.1s
`
	var out strings.Builder
	if err := run(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.HasPrefix(got, in) {
		t.Errorf("input not passed through:\n%s", got)
	}
	for _, want := range []string{
		"median of 3 runs, BenchmarkFilter5/interleaved-2: ns/op 1.5 (1.5 to 1.5), matcher-ns/pkt 28 (16 to 30), libpcap-vm-ns/pkt 40 (33 to 45), ratio 0.67 (0.48 to 0.7)\n",
		"median of 1 runs, BenchmarkOther-2: ns/op 100 (100 to 100)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "median of") != 2 {
		t.Errorf("want two summaries:\n%s", got)
	}
}

func TestBadValueNamed(t *testing.T) {
	err := run(strings.NewReader("BenchmarkX-2 10 1.5 ns/op x1 ratio\n"), &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), `"x1" of ratio`) {
		t.Errorf("err = %v, want the bad value and its unit named", err)
	}
}

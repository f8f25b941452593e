// Command medians passes `go test -bench` output from stdin to stdout and
// then prints, for each benchmark, the median and the range of every
// metric over its runs (-count N). make bench-filter reads its figure
// from it: the benchmark reports each run's ratio, the median over runs
// is what counts on a shared machine.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/presscap/presscap/internal/bench/benchtool"
)

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "medians:", err)
		os.Exit(1)
	}
}

// series holds one benchmark's values per unit, units in order of first
// appearance.
type series struct {
	units  []string
	values map[string][]float64
}

func run(in io.Reader, out io.Writer) error {
	var names []string
	all := map[string]*series{}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(out, line)
		f := strings.Fields(line)
		// BenchmarkName-P  N  value unit  value unit ...
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		s := all[f[0]]
		if s == nil {
			s = &series{values: map[string][]float64{}}
			all[f[0]] = s
			names = append(names, f[0])
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return fmt.Errorf("%s: value %q of %s: %v", f[0], f[i], f[i+1], err)
			}
			if _, ok := s.values[f[i+1]]; !ok {
				s.units = append(s.units, f[i+1])
			}
			s.values[f[i+1]] = append(s.values[f[i+1]], v)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	for _, name := range names {
		s := all[name]
		var parts []string
		for _, u := range s.units {
			v := s.values[u]
			parts = append(parts, fmt.Sprintf("%s %.3g (%.3g to %.3g)", u, benchtool.Median(v), slices.Min(v), slices.Max(v)))
		}
		fmt.Fprintf(out, "median of %d runs, %s: %s\n", len(s.values[s.units[0]]), name, strings.Join(parts, ", "))
	}
	return nil
}

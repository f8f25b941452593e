package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/presscap/presscap/probe/internal/filter"
)

// runFilter compiles a capture filter and prints its program the way
// tcpdump -d, -dd and -ddd do, so that it can be compared with tcpdump's.
func runFilter(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("filter", e)
	live := fs.Bool("live", false, "compile for an AF_PACKET socket (VLAN tag out of band) instead of for frames as stored")
	d := fs.Bool("d", false, "print the program as readable instructions (the default)")
	dd := fs.Bool("dd", false, "print the program as a C array")
	ddd := fs.Bool("ddd", false, "print the program as decimal numbers")
	snap := fs.Uint("s", filter.MaxSnap, "snap length the program returns for an accepted packet")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	format := filter.DumpAsm
	n := 0
	for _, f := range []struct {
		set bool
		f   filter.DumpFormat
	}{{*d, filter.DumpAsm}, {*dd, filter.DumpC}, {*ddd, filter.DumpDecimal}} {
		if f.set {
			format = f.f
			n++
		}
	}
	if n > 1 {
		return errors.New("filter: give only one of -d, -dd, -ddd")
	}
	if *snap == 0 || *snap > filter.MaxSnap {
		return fmt.Errorf("filter: -s %d: want 1 to %d", *snap, filter.MaxSnap)
	}
	mode := filter.Offline
	if *live {
		mode = filter.Live
	}
	// Like tcpdump, the words of the expression may come as several
	// arguments.
	expr := strings.Join(fs.Args(), " ")
	prog, err := filter.Compile(expr, mode, uint32(*snap))
	if err != nil {
		var se *filter.SyntaxError
		if errors.As(err, &se) {
			fmt.Fprintf(e.stderr, "  %s\n  %s^\n", se.Expr, strings.Repeat(" ", se.Pos))
		}
		return err
	}
	return filter.Dump(e.stdout, prog, format)
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/presscap/presscap/probe/internal/capture"
	"github.com/presscap/presscap/ringfs"
)

// runCapture records interfaces into a ring until the context ends
// (SIGINT, SIGTERM), then prints each link's counts.
func runCapture(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("capture", e)
	ifaces := fs.String("iface", "", "interfaces to capture, comma-separated (required)")
	rf := addRingFlags(fs)
	pf := addProgramFlags(fs)
	inbound := fs.Bool("inbound", false, "record only what arrives on each interface (on a bridge's ports: every crossing frame once)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *ifaces == "" {
		return errors.New("capture: -iface is required")
	}
	if *rf.dir == "" {
		return errors.New("capture: -ring is required")
	}
	cfg := capture.Config{Logf: func(format string, args ...any) {
		fmt.Fprintf(e.stderr, "probe: "+format+"\n", args...)
	}}
	if err := pf.compile(&cfg); err != nil {
		return fmt.Errorf("capture: %w", err)
	}

	ring, _, err := rf.open(ringfs.Options{})
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	defer ring.Close()

	var names []string
	for _, name := range strings.Split(*ifaces, ",") {
		names = append(names, strings.TrimSpace(name))
	}
	cfg.Links, err = capture.AddLinks(ring, names, cfg.SnapLen, true)
	if err != nil {
		return fmt.Errorf("%w (-iface)", err)
	}
	for i := range cfg.Links {
		cfg.Links[i].Inbound = *inbound
	}

	c, err := capture.New(cfg, ring)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "probe: capturing %s into %s until interrupted\n", *ifaces, *rf.dir)
	runErr := c.Run(ctx)
	closeErr := ring.Close()

	tw := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "link\tseen\tdropped\twritten\tkernel drops\tbacklog drops\twrite drops\tbytes\treopens\t")
	for _, s := range c.Stats() {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n",
			s.Name, s.Seen, s.Dropped(), s.Written, s.KernelDrops, s.BacklogDrops, s.WriteDrops, s.Bytes, s.Reopens)
	}
	tw.Flush()
	if runErr != nil {
		return runErr
	}
	if err := c.Err(); err != nil {
		return fmt.Errorf("capture: writing %s: %w", *rf.dir, err)
	}
	if closeErr != nil {
		return fmt.Errorf("capture: close %s: %w", *rf.dir, closeErr)
	}
	return nil
}

// programFlags choose what the capture keeps of each packet: the rules
// of a file or one filter, and a snap length.
type programFlags struct {
	rules, filter *string
	snaplen       *int
}

func addProgramFlags(fs *flag.FlagSet) programFlags {
	return programFlags{
		rules:   fs.String("rules", "", "ring rules: JSON list of {\"filter\": EXPR, \"snaplen\": BYTES} or {\"filter\": EXPR, \"discard\": true}"),
		filter:  fs.String("filter", "", "capture only packets this filter (tcpdump syntax) accepts"),
		snaplen: fs.Int("snaplen", 0, "bytes kept of each packet (0: whole packet); with -rules, of packets no rule matches"),
	}
}

// compile checks the flags together and sets cfg's Program and SnapLen.
func (f programFlags) compile(cfg *capture.Config) error {
	if *f.rules != "" && *f.filter != "" {
		return errors.New("-rules and -filter exclude each other")
	}
	if *f.snaplen < 0 || *f.snaplen > capture.MaxSnap {
		return fmt.Errorf("-snaplen %d out of range 0..%d", *f.snaplen, capture.MaxSnap)
	}
	cfg.SnapLen = *f.snaplen
	switch {
	case *f.rules != "":
		rules, err := capture.LoadRules(*f.rules)
		if err != nil {
			return fmt.Errorf("-rules %w", err)
		}
		if cfg.Program, cfg.SnapLen, err = capture.CompileRules(rules, uint32(*f.snaplen)); err != nil {
			return fmt.Errorf("-rules %s: %w", *f.rules, err)
		}
	case *f.filter != "":
		var err error
		if cfg.Program, cfg.SnapLen, err = capture.CompileFilter(*f.filter, uint32(*f.snaplen)); err != nil {
			return fmt.Errorf("-filter: %w", err)
		}
	}
	if cfg.SnapLen == 0 {
		cfg.SnapLen = capture.MaxSnap
	}
	return nil
}

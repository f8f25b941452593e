package main

import (
	"context"
	"errors"
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
	rulesFile := fs.String("rules", "", "ring rules: JSON list of {\"filter\": EXPR, \"snaplen\": BYTES} or {\"filter\": EXPR, \"discard\": true}")
	expr := fs.String("filter", "", "capture only packets this filter (tcpdump syntax) accepts")
	snaplen := fs.Int("snaplen", 0, "bytes kept of each packet (0: whole packet); with -rules, of packets no rule matches")
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
	if *rulesFile != "" && *expr != "" {
		return errors.New("capture: -rules and -filter exclude each other")
	}
	if *snaplen < 0 || *snaplen > capture.MaxSnap {
		return fmt.Errorf("capture: -snaplen %d out of range 0..%d", *snaplen, capture.MaxSnap)
	}
	cfg := capture.Config{SnapLen: *snaplen, Logf: func(format string, args ...any) {
		fmt.Fprintf(e.stderr, "probe: "+format+"\n", args...)
	}}
	switch {
	case *rulesFile != "":
		rules, err := capture.LoadRules(*rulesFile)
		if err != nil {
			return fmt.Errorf("capture: -rules %w", err)
		}
		if cfg.Program, cfg.SnapLen, err = capture.CompileRules(rules, uint32(*snaplen)); err != nil {
			return fmt.Errorf("capture: -rules %s: %w", *rulesFile, err)
		}
	case *expr != "":
		var err error
		if cfg.Program, cfg.SnapLen, err = capture.CompileFilter(*expr, uint32(*snaplen)); err != nil {
			return fmt.Errorf("capture: -filter: %w", err)
		}
	}
	if cfg.SnapLen == 0 {
		cfg.SnapLen = capture.MaxSnap
	}

	ring, _, err := rf.open(ringfs.Options{})
	if err != nil {
		return fmt.Errorf("capture: -ring %s: %w", *rf.dir, err)
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

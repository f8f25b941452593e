package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"golang.org/x/net/bpf"

	"github.com/presscap/presscap/internal/field"
	"github.com/presscap/presscap/probe/internal/capture"
	"github.com/presscap/presscap/ringfs"
)

// runCapture records interfaces into a ring until the context ends
// (SIGINT, SIGTERM), then prints each link's counts.
func runCapture(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("capture", e)
	ifaces := fs.String("iface", "", "interfaces to capture, comma-separated (required)")
	ringDir := fs.String("ring", "", "ring directory; created if it holds no ring (required)")
	sizeStr := fs.String("size", "", "ring size when creating it, bytes or with a unit (\"4GiB\")")
	rulesFile := fs.String("rules", "", "ring rules: JSON list of {\"filter\": EXPR, \"snaplen\": BYTES} or {\"filter\": EXPR, \"discard\": true}")
	expr := fs.String("filter", "", "capture only packets this filter (tcpdump syntax) accepts")
	snaplen := fs.Int("snaplen", 0, "bytes kept of each packet (0: whole packet); with -rules, of packets no rule matches")
	inbound := fs.Bool("inbound", false, "record only what arrives on each interface (on a bridge's ports: every crossing frame once)")
	encrypt := fs.Bool("encrypt", false, "create the ring encrypted, its key kept in -key-dir")
	keyDir := keyDirFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *ifaces == "" {
		return errors.New("capture: -iface is required")
	}
	if *ringDir == "" {
		return errors.New("capture: -ring is required")
	}
	if *rulesFile != "" && *expr != "" {
		return errors.New("capture: -rules and -filter exclude each other")
	}
	if *snaplen < 0 || *snaplen > capture.MaxSnap {
		return fmt.Errorf("capture: -snaplen %d out of range 0..%d", *snaplen, capture.MaxSnap)
	}
	var size int64
	if *sizeStr != "" {
		s, err := field.ParseSize(*sizeStr)
		if err != nil {
			return fmt.Errorf("capture: -size %w", err)
		}
		size = int64(s)
	}

	var prog []bpf.Instruction
	snap := *snaplen
	switch {
	case *rulesFile != "":
		rules, err := capture.LoadRules(*rulesFile)
		if err != nil {
			return fmt.Errorf("capture: -rules %w", err)
		}
		if prog, snap, err = capture.CompileRules(rules, uint32(*snaplen)); err != nil {
			return fmt.Errorf("capture: -rules %s: %w", *rulesFile, err)
		}
	case *expr != "":
		var err error
		if prog, snap, err = capture.CompileFilter(*expr, uint32(*snaplen)); err != nil {
			return fmt.Errorf("capture: -filter: %w", err)
		}
	}
	if snap == 0 {
		snap = capture.MaxSnap
	}

	ring, err := openRing(*ringDir, size, *encrypt, *keyDir)
	if err != nil {
		return err
	}
	defer ring.Close()

	var names []string
	for _, name := range strings.Split(*ifaces, ",") {
		names = append(names, strings.TrimSpace(name))
	}
	links, err := capture.AddLinks(ring, names, snap, true)
	if err != nil {
		return fmt.Errorf("%w (-iface)", err)
	}
	for i := range links {
		links[i].Inbound = *inbound
	}

	c, err := capture.New(capture.Config{
		Links:   links,
		Program: prog,
		SnapLen: snap,
		Logf: func(format string, args ...any) {
			fmt.Fprintf(e.stderr, "probe: "+format+"\n", args...)
		},
	}, ring)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "probe: capturing %s into %s until interrupted\n", *ifaces, *ringDir)
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
		return fmt.Errorf("capture: writing %s: %w", *ringDir, err)
	}
	if closeErr != nil {
		return fmt.Errorf("capture: close %s: %w", *ringDir, closeErr)
	}
	return nil
}

// openRing opens the ring in dir, or creates one of size bytes if dir
// holds none.
func openRing(dir string, size int64, encrypt bool, keyDir string) (*ringfs.Ring, error) {
	r, _, err := ringfs.OpenOrCreate(dir, ringfs.Options{Size: size, Encrypt: encrypt, KeyDir: keyDir})
	err = keyHint(err, keyDir)
	if errors.Is(err, ringfs.ErrNoRing) {
		return nil, fmt.Errorf("capture: -ring %s holds no ring: give -size to create one (at least %d bytes)", dir, ringfs.MinSize)
	}
	if err != nil {
		return nil, fmt.Errorf("capture: -ring: %w", err)
	}
	return r, nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/presscap/presscap/probe/internal/ports"
)

// runNetwork brings the ports into the configuration's network mode
// (inline bridge, mirror ports, or nothing in single mode) and, with
// -watch, reports the ports' link changes until interrupted. The bridge
// stays when the command ends: it is the kernel's.
func runNetwork(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("network", e)
	path := configFlag(fs)
	watch := fs.Bool("watch", false, "then report the ports' link changes (and take a re-plugged port back) until interrupted")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, _, err := loadConfig(*path)
	if err != nil {
		return err
	}
	s := c.Network.Setup()
	if err := ports.Apply(s); err != nil {
		return fmt.Errorf("network: %s mode: %w", s.Mode, err)
	}
	what := s.Mode + " mode"
	switch s.Mode {
	case ports.Inline:
		what += ": " + s.BridgeName() + " over " + strings.Join(s.Ports, ", ")
	case ports.Mirror:
		what += ": listening on " + strings.Join(s.Ports, ", ")
	default:
		what += ": nothing to set up"
	}
	fmt.Fprintf(e.stdout, "network: %s\n", what)
	if !*watch {
		return nil
	}
	err = ports.Watch(ctx, s, func(ev ports.Event) {
		if ev.Err != nil {
			fmt.Fprintf(e.stdout, "%s %s (setting it up again failed: %v)\n", ev.Port, ev.State, ev.Err)
			return
		}
		fmt.Fprintf(e.stdout, "%s %s\n", ev.Port, ev.State)
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

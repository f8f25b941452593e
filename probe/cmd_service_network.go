package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/presscap/presscap/internal/safefile"
	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/internal/ports"
)

// lastGoodFile keeps, in the state directory, the network section of the
// last valid configuration the service ran with.
const lastGoodFile = "network.json"

// saveLastGood records the network section of a valid configuration, so
// that a later invalid file still brings the same bridge up.
func saveLastGood(c config.Config) error {
	b, err := json.Marshal(c.Network)
	if err != nil {
		return err
	}
	p := filepath.Join(c.Storage.StateDir, lastGoodFile)
	if old, err := os.ReadFile(p); err == nil && string(old) == string(b) {
		return nil
	}
	if err := os.MkdirAll(c.Storage.StateDir, 0o755); err != nil {
		return fmt.Errorf("last good network: %w", err)
	}
	if err := safefile.WriteFile(p, b, 0o644); err != nil {
		return fmt.Errorf("last good network: %w", err)
	}
	return nil
}

// lastGoodNetwork is the network mode to bring up when the configuration
// is not valid, and where it comes from: the network section the service
// last ran with (in the state directory the bad configuration names, if it
// parses that far, else the default one), else, for the stack of layers,
// the image's layer alone if it is valid, else none (the ports are left
// alone).
// layers are the service's layer files, the image's first.
func lastGoodNetwork(flagPath string, layers []string) (config.Network, string, bool) {
	stateDir := config.DefaultConfig().Storage.StateDir
	var bad config.Config
	var err error
	if layered(flagPath) {
		bad, _, err = config.LoadLayers(layers)
	} else if path, ferr := config.Find(flagPath, os.Getenv); ferr == nil {
		bad, err = config.Load(path)
	} else {
		err = ferr
	}
	if err == nil && filepath.IsAbs(bad.Storage.StateDir) {
		stateDir = bad.Storage.StateDir
	}
	p := filepath.Join(stateDir, lastGoodFile)
	if b, err := os.ReadFile(p); err == nil {
		c := config.DefaultConfig()
		if err := json.Unmarshal(b, &c.Network); err == nil && c.Network.Setup().Check() == nil {
			return c.Network, p, true
		}
	}
	if layered(flagPath) {
		if c, used, err := loadLayers(layers[:1]); err == nil && len(used) == 1 {
			return c.Network, layers[0], true
		}
	}
	return config.Network{}, "", false
}

// startNetworkMode brings the ports into the mode n, then watches their
// links in the background until ctx ends, logging each change (a port that
// comes back is set up again by ports.Watch). wait waits for the watch to
// end after ctx has.
func startNetworkMode(ctx context.Context, n config.Network, logf func(string, ...any), links *linkEvents) (wait func()) {
	s := n.Setup()
	if s.Mode == ports.Single {
		return func() {}
	}
	if err := ports.Apply(s); err != nil {
		logf("network: %s mode: %v (carrying on with what could be set up)", s.Mode, err)
	} else {
		logf("network: %s mode over %v", s.Mode, s.Ports)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchPorts(ctx, s, logf, links)
	}()
	return func() { <-done }
}

// watchPorts logs the ports' link changes until ctx ends, watching again
// when the kernel's notifications fail.
func watchPorts(ctx context.Context, s ports.Setup, logf func(string, ...any), links *linkEvents) {
	for {
		err := ports.Watch(ctx, s, func(ev ports.Event) {
			links.event(ev.Port, ev.State == ports.Up, time.Now())
			switch {
			case ev.Err != nil:
				logf("network: port %s %s (setting it up again failed: %v)", ev.Port, ev.State, ev.Err)
			case ev.State == ports.Up:
				logf("network: port %s up", ev.Port)
			default:
				logf("network: port %s %s: no link on that side", ev.Port, ev.State)
			}
		})
		if ctx.Err() != nil {
			return
		}
		logf("network: %v (watching again)", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// linkEvents carries the ports' link changes to the service (its
// LinkChanged, which records the gaps in the ring), keeping those seen
// before the service exists: the bridge comes up first. A nil one drops
// them.
type linkEvents struct {
	mu      sync.Mutex
	to      func(port string, up bool, at time.Time)
	pending []linkEvent
}

type linkEvent struct {
	port string
	up   bool
	at   time.Time
}

func (l *linkEvents) event(port string, up bool, at time.Time) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.to == nil {
		l.pending = append(l.pending, linkEvent{port, up, at})
		return
	}
	l.to(port, up, at)
}

// attach passes the changes kept so far to fn, and every later one.
func (l *linkEvents) attach(fn func(port string, up bool, at time.Time)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.pending {
		fn(e.port, e.up, e.at)
	}
	l.to, l.pending = fn, nil
}

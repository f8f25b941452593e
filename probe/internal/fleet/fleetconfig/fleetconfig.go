// Package fleetconfig takes the configuration the provider's server offers
// a probe (fleet/config/<id>.json, else default.json): a changed file is
// checked as `probe check` would check the stack it joins, kept on /perm
// as its own layer when valid, and applied by restarting the service once
// no window is open or being saved. An invalid one is refused with
// its errors by field; the last good one stays in force.
package fleetconfig

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/presscap/presscap/internal/safefile"
	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/internal/fleet"
)

// States of the server's configuration, as the health report gives them.
const (
	StateApplied = "applied"
	StatePending = "restart pending"
	StateRefused = "refused"
	StateNone    = "none"
)

// Applier keeps the fleet layer. Set the fields, call Start, then pass it
// what the server offers (Offer) and Poll it (or Run).
type Applier struct {
	// Below and Above are the files under and over the fleet layer (the
	// image's, a local edit); missing ones are left out.
	Below, Above []string
	// Path is where the fleet layer is kept (config.FleetPath).
	Path string
	// DHCP is the interface the image's DHCP client runs on
	// (config.DHCPEnv): a layer whose network mode contradicts it is
	// refused.
	DHCP string
	// Busy says a window is open or being saved.
	Busy func() bool
	// Restart makes the service exit to start again with the new stack;
	// called at most once.
	Restart func()
	Logf    func(format string, args ...any)

	mu         sync.Mutex
	state      fleet.FleetConfig // for the report
	current    string            // hash of the layer in force, "" for none
	restartDue bool
	restarted  bool
}

// sourceSuffix names the file beside Path that says where on the server
// the layer came from.
const sourceSuffix = ".source"

// Hash is how files are named in reports.
func Hash(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Start reads the layer in force.
func (a *Applier) Start() {
	b, err := os.ReadFile(a.Path)
	if err != nil {
		return
	}
	a.current = Hash(b)
	src, _ := os.ReadFile(a.Path + sourceSuffix)
	a.state = fleet.FleetConfig{Source: string(src), Hash: a.current, State: StateApplied}
}

// Refused marks the layer in force as refused (the stack with it did not
// validate after an update of the image or a local edit; the service runs
// without it).
func (a *Applier) Refused(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.state.State, a.state.Errors = StateRefused, errorList(err)
	a.current = ""
}

// Report is the state for the next health report, nil before anything
// is known.
func (a *Applier) Report() *fleet.FleetConfig {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state.State == "" {
		return nil
	}
	s := a.state
	s.Errors = append([]string(nil), s.Errors...)
	return &s
}

// Offer takes what the server holds for this probe (source "" and no body:
// nothing). An unchanged file is left as it is.
func (a *Applier) Offer(source string, body []byte, readErr error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if readErr != nil {
		a.refuse(source, "", []string{fmt.Sprintf("%s: %v", source, readErr)})
		return
	}
	if source == "" {
		if a.current == "" {
			if a.state.State != StateRefused {
				a.state = fleet.FleetConfig{State: StateNone}
			}
			return
		}
		if errs := a.check(nil); len(errs) > 0 {
			a.refuse("", "", errs)
			return
		}
		if err := os.Remove(a.Path); err != nil {
			a.logf("fleet: the server has no configuration for this probe any more, but %v", err)
			return
		}
		os.Remove(a.Path + sourceSuffix)
		a.logf("fleet: the server has no configuration for this probe any more: back to the image's (restart)")
		a.current, a.restartDue = "", true
		a.state = fleet.FleetConfig{State: StatePending}
		a.poll()
		return
	}
	hash := Hash(body)
	if hash == a.state.Hash && source == a.state.Source {
		return // seen: in force, pending or refused already
	}
	if hash == a.current {
		// The same file under another name (default.json copied to
		// <id>.json): in force already, only its source changes.
		if source != a.state.Source {
			if err := safefile.WriteFile(a.Path+sourceSuffix, []byte(source), 0o644); err != nil {
				a.logf("fleet: %v", err)
			}
		}
		a.state = fleet.FleetConfig{Source: source, Hash: hash, State: StateApplied}
		if a.restartDue {
			a.state.State = StatePending
		}
		return
	}
	if errs := a.check(body); len(errs) > 0 {
		a.refuse(source, hash, errs)
		return
	}
	if err := os.MkdirAll(filepath.Dir(a.Path), 0o755); err != nil {
		a.logf("fleet: configuration %s (%s) not kept: %v", source, hash, err)
		return
	}
	if err := safefile.WriteFile(a.Path, body, 0o644); err != nil {
		a.logf("fleet: configuration %s (%s) not kept: %v", source, hash, err)
		return
	}
	if err := safefile.WriteFile(a.Path+sourceSuffix, []byte(source), 0o644); err != nil {
		a.logf("fleet: %v", err)
	}
	a.logf("fleet: configuration %s (%s) accepted; the service restarts with it once no window is open", source, hash)
	a.current, a.restartDue = hash, true
	a.state = fleet.FleetConfig{Source: source, Hash: hash, State: StatePending}
	a.poll()
}

func (a *Applier) refuse(source, hash string, errs []string) {
	a.state = fleet.FleetConfig{Source: source, Hash: hash, State: StateRefused, Errors: errs}
	a.logf("fleet: configuration %s from the server refused (the last good one stays in force): %v", source, errs)
}

// check validates the stack the file would join (nil: the stack without
// a fleet layer) and returns its errors, one per field.
func (a *Applier) check(body []byte) []string {
	below, _, err := config.ReadLayers(a.Below)
	if err != nil {
		return errorList(err)
	}
	above, _, err := config.ReadLayers(a.Above)
	if err != nil {
		return errorList(err)
	}
	ls := below
	if body != nil {
		if err := config.CheckFromServer(body); err != nil {
			return errorList(err)
		}
		ls = append(ls, config.Layer{Data: body})
	}
	ls = append(ls, above...)
	c, err := config.ParseLayers(ls)
	if err == nil {
		err = c.Validate()
	}
	if err == nil {
		err = c.Network.CheckDHCP(a.DHCP)
	}
	return errorList(err)
}

// errorList splits err into its errors by field.
func errorList(err error) []string {
	if err == nil {
		return nil
	}
	var es config.Errors
	if errors.As(err, &es) {
		var out []string
		for _, e := range es {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}

// Poll restarts the service if a new stack waits and no window is open or
// being saved.
func (a *Applier) Poll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.poll()
}

func (a *Applier) poll() {
	if !a.restartDue || a.restarted || (a.Busy != nil && a.Busy()) {
		return
	}
	a.restarted = true
	a.logf("fleet: restarting to apply the configuration from the server")
	a.Restart()
}

// Run polls every interval until ctx ends.
func (a *Applier) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.Poll()
		}
	}
}

func (a *Applier) logf(format string, args ...any) {
	if a.Logf != nil {
		a.Logf(format, args...)
	}
}

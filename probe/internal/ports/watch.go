package ports

import (
	"context"
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// State is a port's link state.
type State int

const (
	Gone State = iota // no such interface (a USB adapter pulled out)
	Down              // present, but administratively down or without carrier
	Up                // up with carrier: a cable to a live device
)

var stateNames = [...]string{Gone: "gone", Down: "down", Up: "up"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Event is a port's new state. Err is set when the port came back and
// applying the mode to it again failed.
type Event struct {
	Port  string
	State State
	Err   error
}

// Watch reports every port's state once at the start and then each
// change, until ctx ends or the kernel's notifications fail (then the
// caller watches again). When a port appears again, as a re-plugged USB
// adapter does (a new interface, down and outside the bridge), the mode is
// applied again before the event is reported.
func Watch(ctx context.Context, s Setup, report func(Event)) error {
	if err := s.Check(); err != nil {
		return err
	}
	if len(s.Ports) == 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	updates := make(chan netlink.LinkUpdate, 256)
	done := make(chan struct{})
	defer close(done)
	failed := make(chan error, 1)
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case failed <- err:
			default:
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watch links: %w", err)
	}

	type port struct {
		index int
		state State
		known bool
	}
	ports := map[string]*port{}
	for _, p := range s.Ports {
		ports[p] = &port{}
	}
	// see takes the port's current link (nil: gone) and reports a change.
	see := func(name string, l netlink.Link) {
		p := ports[name]
		st, index := Gone, 0
		if l != nil {
			st, index = stateOf(l.Attrs().RawFlags), l.Attrs().Index
		}
		var applyErr error
		if p.known && index != 0 && index != p.index && s.Mode != Single {
			applyErr = Apply(s)
			if fresh, err := netlink.LinkByName(name); err == nil {
				st = stateOf(fresh.Attrs().RawFlags)
			}
		}
		if p.known && st == p.state && index == p.index && applyErr == nil {
			return
		}
		*p = port{index: index, state: st, known: true}
		report(Event{Port: name, State: st, Err: applyErr})
	}
	// The subscription is open before the first look, so no change
	// between the two is missed; a repeated state is not reported.
	for _, name := range s.Ports {
		l, err := netlink.LinkByName(name)
		var notFound netlink.LinkNotFoundError
		if err != nil && !errors.As(err, &notFound) {
			return fmt.Errorf("port %s: %w", name, err)
		}
		see(name, l)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-failed:
			return fmt.Errorf("watch links: %w", err)
		case u, ok := <-updates:
			if !ok {
				return errors.New("watch links: the kernel's notifications ended")
			}
			name := u.Attrs().Name
			if ports[name] == nil {
				continue
			}
			if u.Header.Type == unix.RTM_DELLINK {
				see(name, nil)
			} else {
				see(name, u.Link)
			}
		}
	}
}

func stateOf(flags uint32) State {
	if flags&unix.IFF_UP != 0 && flags&unix.IFF_LOWER_UP != 0 {
		return Up
	}
	return Down
}

package ports_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/probe/internal/ports"
)

// TestPortAppearsLater is a boot with the USB adapter not yet there: Apply
// makes the bridge over the port that exists and says which is missing;
// Watch reports the missing port gone, and when it appears takes it into
// the bridge and reports it up.
func TestPortAppearsLater(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root and network namespaces")
	}
	netnstest.Require(t, "ip", "sysctl")
	probe, router, phone := netnstest.NewNamespace(t), netnstest.NewNamespace(t), netnstest.NewNamespace(t)
	netnstest.Cable(t, router, "lan", probe, "eth0")
	netnstest.Run(t, "ip", "-n", router, "link", "set", "lan", "up")
	s := ports.Setup{Mode: ports.Inline, Ports: []string{"eth0", "eth1"}}

	events := make(chan ports.Event, 100)
	applied := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan error, 1)
	go func() {
		watched <- netnstest.DoIn(probe, func() error {
			applied <- ports.Apply(s)
			return ports.Watch(ctx, s, func(e ports.Event) { events <- e })
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-watched
	})
	if err := <-applied; err == nil || !strings.Contains(err.Error(), "eth1") {
		t.Errorf("Apply without eth1: %v, want an error naming eth1", err)
	}
	if l := showLink(t, probe, "eth0"); l.Master != "br0" {
		t.Errorf("eth0's master %q, want br0 although eth1 is missing", l.Master)
	}
	// state is each port's last reported state: events of different
	// ports come in any order.
	state := map[string]ports.State{}
	expect := func(port string, st ports.State) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			if got, ok := state[port]; ok && got == st {
				return
			}
			select {
			case e := <-events:
				if e.Err != nil {
					t.Fatalf("event %+v", e)
				}
				state[e.Port] = e.State
			case <-timeout:
				t.Fatalf("no event %s %s in 30s (last states %v)", port, st, state)
			}
		}
	}
	expect("eth1", ports.Gone)
	expect("eth0", ports.Up)

	netnstest.Cable(t, probe, "eth1", phone, "eth0")
	netnstest.Run(t, "ip", "-n", phone, "link", "set", "eth0", "up")
	expect("eth1", ports.Up)
	if l := showLink(t, probe, "eth1"); l.Master != "br0" || l.Index == 0 {
		t.Errorf("eth1 after it appeared: master %q, want br0", l.Master)
	}
	cancel()
	if err := <-watched; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch after cancel: %v, want context.Canceled", err)
	}
	watched <- nil // for the cleanup
}

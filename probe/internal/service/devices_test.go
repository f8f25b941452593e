package service

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/internal/trigger"
)

// TestDefaultDevicesTakeOnlyTheR400 runs the watcher with the default
// configuration's device entries over FIFO event devices: the R400 under
// both of its product ids is taken, a Logitech keyboard (vendor 046d,
// another product id, every key including Page Up) that an installer
// plugs in is neither opened nor pressing.
func TestDefaultDevicesTakeOnlyTheR400(t *testing.T) {
	dir := t.TempDir()
	ids := map[string]uint16{"event1": 0xc52d, "event2": 0xc538, "event3": 0xc31c}
	identify := func(f *os.File) (trigger.DeviceInfo, error) {
		p := ids[filepath.Base(f.Name())]
		info := trigger.DeviceInfo{Name: "Logitech USB Receiver", Bus: 3, Vendor: 0x046d, Product: p}
		if p == 0xc31c {
			info.Name = "Logitech USB Keyboard"
			for k := uint16(1); k < 249; k++ {
				info.Keys.Set(k)
			}
			return info, nil
		}
		for _, k := range []uint16{trigger.KeyEsc, trigger.KeyDot, trigger.KeyF5, trigger.KeyPageUp, trigger.KeyPageDown} {
			info.Keys.Set(k)
		}
		return info, nil
	}
	fifo := map[string]*os.File{}
	for name := range ids {
		fifo[name] = plugFIFO(t, dir, name)
	}

	c := config.DefaultConfig()
	w := &trigger.Watcher{Dir: dir, Rescan: 100 * time.Millisecond, Grab: c.Trigger.Grab,
		Matches: c.Trigger.Matches(), Identify: identify, Logf: t.Logf}
	ctx, cancel := context.WithCancel(context.Background())
	presses := make(chan trigger.Press, 8)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, presses) }()
	defer func() { cancel(); <-done }()

	testtool.WaitFor(t, "both R400 receivers to be taken", 10*time.Second, func() bool { return len(w.Devices()) == 2 })
	for _, d := range w.Devices() {
		if d.Product == 0xc31c || strings.Contains(d.Name, "Keyboard") {
			t.Fatalf("the Logitech keyboard was taken: %v", d)
		}
	}
	if _, err := fifo["event3"].Write(trigger.KeyStroke(time.Now(), trigger.KeyPageUp)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"event1", "event2"} {
		if _, err := fifo[name].Write(trigger.KeyStroke(time.Now(), trigger.KeyPageDown)); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-presses:
			if p.Device.Product == 0xc31c {
				t.Fatalf("press from the keyboard: %+v", p)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no press from %s", name)
		}
	}
	select {
	case p := <-presses:
		t.Fatalf("unexpected press %+v", p)
	case <-time.After(300 * time.Millisecond):
	}
}

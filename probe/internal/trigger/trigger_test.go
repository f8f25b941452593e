package trigger

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/testtool"
)

// r400ID is struct input_id as EVIOCGID fills it for a Logitech R400
// receiver on a little-endian machine: bustype BUS_USB (3), vendor 0x046d,
// product 0xc52d, version 0x0111.
var r400ID = []byte{0x03, 0x00, 0x6d, 0x04, 0x2d, 0xc5, 0x11, 0x01}

// r400Keys is EVIOCGBIT(EV_KEY) as the kernel fills it for the R400's
// keyboard interface: bits 1 (ESC), 52 (DOT), 63 (F5), 104 (PAGEUP) and
// 109 (PAGEDOWN), in unsigned longs, little-endian.
func r400Keys() KeyBits {
	var k KeyBits
	k[0] = 0x02         // bit 1
	k[6] = 0x10         // bit 52
	k[7] = 0x80         // bit 63
	k[13] = 0x01 | 0x20 // bits 104 and 109
	return k
}

func TestDecodeKernelBytes(t *testing.T) {
	// tv_sec 1700000000, tv_usec 250000, EV_KEY, KEY_PAGEDOWN, value 1.
	b := []byte{
		0x00, 0xf1, 0x53, 0x65, 0, 0, 0, 0,
		0x90, 0xd0, 0x03, 0x00, 0, 0, 0, 0,
		0x01, 0x00, 0x6d, 0x00, 0x01, 0x00, 0x00, 0x00,
	}
	ev, err := DecodeEvent(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Event{Time: time.Unix(1700000000, 250000000), Type: EvKey, Code: KeyPageDown, Value: 1}
	if !ev.Time.Equal(want.Time) || ev.Type != want.Type || ev.Code != want.Code || ev.Value != want.Value {
		t.Fatalf("DecodeEvent = %+v, want %+v", ev, want)
	}
	if got := AppendEvent(nil, ev); string(got) != string(b) {
		t.Fatalf("AppendEvent = % x, want % x", got, b)
	}
	if _, err := DecodeEvent(b[:23]); err == nil {
		t.Fatal("DecodeEvent of 23 bytes succeeded")
	}
}

func TestParseInputIDAndKeyBits(t *testing.T) {
	bus, vendor, product, _, err := ParseInputID(r400ID)
	if err != nil || bus != 3 || vendor != 0x046d || product != 0xc52d {
		t.Fatalf("ParseInputID = %x %x %x %v", bus, vendor, product, err)
	}
	k := r400Keys()
	for _, c := range []uint16{KeyEsc, KeyDot, KeyF5, KeyPageUp, KeyPageDown} {
		if !k.Has(c) {
			t.Errorf("Has(%s) = false", KeyName(c))
		}
	}
	for _, c := range []uint16{0, 2, 51, 53, 62, 64, 103, 105, 108, 110, KeyMax} {
		if k.Has(c) {
			t.Errorf("Has(%d) = true", c)
		}
	}
	var s KeyBits
	for _, c := range []uint16{KeyEsc, KeyDot, KeyF5, KeyPageUp, KeyPageDown} {
		s.Set(c)
	}
	if s != k {
		t.Errorf("Set gives % x, kernel layout is % x", s[:16], k[:16])
	}
}

func r400Match() Match {
	return Match{Vendor: 0x046d, Keys: []uint16{KeyPageUp, KeyPageDown, KeyF5, KeyEsc, KeyDot}}
}

func TestMatchAccepts(t *testing.T) {
	_, v, p, _, _ := ParseInputID(r400ID)
	r400 := DeviceInfo{Name: "Logitech USB Receiver", Vendor: v, Product: p, Keys: r400Keys()}
	var mouseKeys KeyBits
	mouseKeys.Set(0x110)
	mouse := DeviceInfo{Name: "Logitech USB Receiver Mouse", Vendor: v, Product: p, Keys: mouseKeys}
	kbd := DeviceInfo{Name: "Other keyboard", Vendor: 0x1234, Product: 1, Keys: r400Keys()}
	m := r400Match()
	if !m.Accepts(r400) {
		t.Error("R400 not accepted")
	}
	if m.Accepts(mouse) {
		t.Error("mouse interface of the same receiver accepted")
	}
	if m.Accepts(kbd) {
		t.Error("other vendor's keyboard accepted")
	}
	if !(Match{Name: "other"}).Accepts(kbd) || (Match{Name: "other"}).Accepts(r400) {
		t.Error("name match wrong")
	}
	if (Match{Vendor: 0x046d, Product: 0xc538}).Accepts(r400) {
		t.Error("product mismatch accepted")
	}
}

func TestKeyCode(t *testing.T) {
	for in, want := range map[string]uint16{"KEY_PAGEUP": 104, "pagedown": 109, "KEY_F5": 63, "0x34": 52, "1": 1} {
		if got, err := KeyCode(in); err != nil || got != want {
			t.Errorf("KeyCode(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"KEY_NOPE", "0", "99999", ""} {
		if _, err := KeyCode(in); err == nil {
			t.Errorf("KeyCode(%q) succeeded", in)
		}
	}
}

// fakeIdentify stands in for the ioctls a FIFO cannot answer: files whose
// name contains "kbd" are another vendor's keyboard, the rest are R400s.
func fakeIdentify(f *os.File) (DeviceInfo, error) {
	_, v, p, _, _ := ParseInputID(r400ID)
	if strings.Contains(filepath.Base(f.Name()), "kbd") {
		return DeviceInfo{Name: "Other keyboard", Vendor: 0x1234, Product: 1, Keys: r400Keys()}, nil
	}
	return DeviceInfo{Name: "Logitech USB Receiver", Vendor: v, Product: p, Keys: r400Keys()}, nil
}

// plug makes a FIFO event device appear in dir under name, with a writer
// already attached (so the reader does not see end of file at once).
func plug(t *testing.T, dir, name string) *os.File {
	t.Helper()
	stage := filepath.Join(t.TempDir(), name)
	if err := syscall.Mkfifo(stage, 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(stage, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(stage, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
	return w
}

type logger struct {
	mu    sync.Mutex
	lines []string
}

func (l *logger) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimSpace(strings.ReplaceAll(format, "%", "")))
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testtool.WaitFor(t, what, 10*time.Second, cond)
}

func nextPress(t *testing.T, ch <-chan Press) Press {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no press within 10s")
	}
	return Press{}
}

func noPress(t *testing.T, ch <-chan Press) {
	t.Helper()
	select {
	case p := <-ch:
		t.Fatalf("unexpected press %+v", p)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestWatcherHotplugRepeatAndPull(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "input") // does not exist yet, like /dev/input at boot
	var l logger
	w := &Watcher{Dir: dir, Rescan: 100 * time.Millisecond, Grab: true, Matches: []Match{r400Match()}, Identify: fakeIdentify, Logf: l.logf}
	ctx, cancel := context.WithCancel(context.Background())
	presses := make(chan Press, 16)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, presses) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	time.Sleep(150 * time.Millisecond)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	kbd := plug(t, dir, "event3-kbd")
	defer kbd.Close()
	dev := plug(t, dir, "event5")
	waitFor(t, "the R400 to be opened", func() bool { return len(w.Devices()) == 1 })
	if got := w.Devices()[0].Path; got != filepath.Join(dir, "event5") {
		t.Fatalf("open device %s, want event5", got)
	}

	// The other vendor's keyboard is ignored even for an R400 key.
	if _, err := kbd.Write(KeyStroke(time.Now(), KeyPageDown)); err != nil {
		t.Fatal(err)
	}
	// A held key: down, repeats, up. One press.
	now := time.Now()
	var b []byte
	b = AppendEvent(b, Event{Time: now, Type: EvKey, Code: KeyPageDown, Value: 1})
	b = AppendEvent(b, Event{Time: now, Type: EvSyn})
	for i := 0; i < 5; i++ {
		b = AppendEvent(b, Event{Time: now, Type: EvKey, Code: KeyPageDown, Value: 2})
	}
	b = AppendEvent(b, Event{Time: now, Type: EvKey, Code: KeyPageDown, Value: 0})
	// A key the R400 does not have, and a non-key event with code 104.
	b = append(b, KeyStroke(now, 30)...)
	b = AppendEvent(b, Event{Time: now, Type: 2, Code: KeyPageUp, Value: 1})
	// Written in two pieces that split an event, as a FIFO may deliver.
	if _, err := dev.Write(b[:30]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if _, err := dev.Write(b[30:]); err != nil {
		t.Fatal(err)
	}
	p := nextPress(t, presses)
	if p.Key != KeyPageDown || !p.Time.Equal(now.Truncate(time.Microsecond)) || p.Device.Vendor != 0x046d {
		t.Fatalf("press = %+v", p)
	}
	noPress(t, presses)

	// An implausible event timestamp (clock jumped): the read time is used.
	if _, err := dev.Write(KeyStroke(time.Unix(100, 0), KeyF5)); err != nil {
		t.Fatal(err)
	}
	p = nextPress(t, presses)
	if p.Key != KeyF5 || time.Since(p.Time) > 5*time.Second {
		t.Fatalf("press with bad timestamp = %+v", p)
	}

	// Pulled: writer gone and node removed.
	dev.Close()
	os.Remove(filepath.Join(dir, "event5"))
	waitFor(t, "the device to be dropped", func() bool { return len(w.Devices()) == 0 })

	// Plugged again, under another name as the kernel may choose.
	dev2 := plug(t, dir, "event6")
	defer dev2.Close()
	waitFor(t, "the re-plugged device", func() bool { return len(w.Devices()) == 1 })
	if _, err := dev2.Write(KeyStroke(time.Now(), KeyDot)); err != nil {
		t.Fatal(err)
	}
	if p := nextPress(t, presses); p.Key != KeyDot {
		t.Fatalf("press after re-plug = %+v", p)
	}

	l.mu.Lock()
	log := strings.Join(l.lines, "\n")
	l.mu.Unlock()
	for _, want := range []string{"ignoring", "grab failed", "accepted", "device gone"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel (a blocked read was not woken)")
	}
	done <- nil
}

func TestIdentifyIoctlOnNonDevice(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := IdentifyIoctl(f); err == nil || !strings.Contains(err.Error(), "EVIOCGID") {
		t.Fatalf("IdentifyIoctl(/dev/null) = %v, want an EVIOCGID error", err)
	}
	if err := Grab(f); err == nil {
		t.Fatal("Grab(/dev/null) succeeded")
	}
}

// TestIoctlNumbers checks the request codes against linux/input.h as
// checked against a C program including <linux/input.h>.
func TestIoctlNumbers(t *testing.T) {
	if eviocgid != 0x80084502 {
		t.Errorf("EVIOCGID = %#x", eviocgid)
	}
	if eviocgrab != 0x40044590 {
		t.Errorf("EVIOCGRAB = %#x", eviocgrab)
	}
	if got := eviocgbit(EvKey, 96); got != 0x80604521 {
		t.Errorf("EVIOCGBIT(EV_KEY, 96) = %#x", got)
	}
	if got := eviocgname(256); got != 0x81004506 {
		t.Errorf("EVIOCGNAME(256) = %#x", got)
	}
}

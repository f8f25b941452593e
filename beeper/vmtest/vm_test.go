package vmtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/beeper"
	"github.com/presscap/presscap/beeper/internal/tonetest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/leds"
)

// kernel finds an installed Debian kernel with the modules the VM needs.
func kernel(t *testing.T) (vmlinuz, modDir string) {
	t.Helper()
	ks, _ := filepath.Glob("/boot/vmlinuz-*")
	for i := len(ks) - 1; i >= 0; i-- {
		ver := strings.TrimPrefix(filepath.Base(ks[i]), "vmlinuz-")
		md := filepath.Join("/lib/modules", ver)
		if _, err := os.Stat(filepath.Join(md, "kernel/sound/usb/snd-usb-audio.ko")); err == nil {
			return ks[i], md
		}
	}
	t.Fatal("no /boot/vmlinuz-* with kernel/sound/usb/snd-usb-audio.ko: install the Debian package linux-image-amd64")
	return "", ""
}

// closure returns mods and their dependencies from modules.dep, each after
// its dependencies.
func closure(t *testing.T, modDir string, mods ...string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	deps := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			deps[k] = strings.Fields(v)
		}
	}
	var order []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(m string) {
		if seen[m] {
			return
		}
		seen[m] = true
		d, ok := deps[m]
		if !ok {
			t.Fatalf("module %s not in modules.dep", m)
		}
		for i := len(d) - 1; i >= 0; i-- {
			visit(d[i])
		}
		order = append(order, m)
	}
	for _, m := range mods {
		visit(m)
	}
	return order
}

// build builds a guest program for goarch.
func build(t *testing.T, dir, goarch, pkg string) []byte {
	t.Helper()
	bin := filepath.Join(dir, path.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// initramfs builds the guest /init and packs it with the modules and the
// machine's extra files (by path in the guest; programs are executable).
func initramfs(t *testing.T, dir, goarch, modDir string, mods []string, extra map[string][]byte) string {
	t.Helper()
	var buf bytes.Buffer
	c := newCPIO(&buf)
	c.file("init", 0o755, build(t, dir, goarch, "github.com/presscap/presscap/beeper/vmtest/guest"))
	for _, name := range slices.Sorted(maps.Keys(extra)) {
		mode := uint32(0o644)
		if strings.HasPrefix(name, "bin/") {
			mode = 0o755
		}
		c.file(name, mode, extra[name])
	}
	for _, d := range []string{"proc", "sys", "dev"} {
		c.mkdirAll(d)
	}
	for _, m := range mods {
		b, err := os.ReadFile(filepath.Join(modDir, m))
		if err != nil {
			t.Fatal(err)
		}
		c.file("lib/modules/"+m, 0o644, b)
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "initramfs.cpio")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type vmResult struct {
	console string
	wav     []int16 // interleaved, from the first device
	wav2    []int16 // from the device plugged in later, if any
	rate    int
	chans   int
}

// vmSpec is a machine to boot.
type vmSpec struct {
	qemu, debianPackage string // the emulator and where it comes from
	goarch              string // of the guest program
	kernel, modDir      string
	mods                []string          // to load, in order, from modDir
	extra               map[string][]byte // more files for the initramfs
	console             string
	args                []string // machine and devices
}

// amd64VM is Debian's kernel with QEMU's USB audio device behind xHCI and
// two WAV recorders: a replugged device records through the second, since
// device_add on the first one would start its file again. uinput and evdev
// (both modules in Debian's kernel) serve the LED and the trigger check,
// which runs the probe's trigger watcher (/bin/vmcheck) with the Pi
// image's configuration.
func amd64VM(t *testing.T, dir string) vmSpec {
	vmlinuz, modDir := kernel(t)
	wav, wav2 := filepath.Join(dir, "out.wav"), filepath.Join(dir, "out2.wav")
	image, err := os.ReadFile(filepath.Join("..", "..", "gokrazy", "presscap", "probe.json"))
	if err != nil {
		t.Fatal(err)
	}
	return vmSpec{
		qemu: "qemu-system-x86_64", debianPackage: "qemu-system-x86", goarch: "amd64",
		kernel: vmlinuz, modDir: modDir, console: "ttyS0",
		mods: closure(t, modDir, "kernel/drivers/usb/host/xhci-pci.ko", "kernel/sound/usb/snd-usb-audio.ko",
			"kernel/drivers/input/misc/uinput.ko", "kernel/drivers/input/evdev.ko"),
		extra: map[string][]byte{
			"bin/vmcheck":              build(t, dir, "amd64", "github.com/presscap/presscap/probe/internal/trigger/vmcheck"),
			"etc/presscap/config.json": image,
		},
		args: []string{
			"-audiodev", "wav,id=a0,path=" + wav + ",out.frequency=48000,out.channels=2,out.format=s16",
			"-audiodev", "wav,id=a1,path=" + wav2 + ",out.frequency=48000,out.channels=2,out.format=s16",
			"-device", "qemu-xhci,id=xhci", "-device", "usb-audio,id=snd0,audiodev=a0,bus=xhci.0",
			"-icount", "shift=4,sleep=off",
		},
	}
}

// arm64VM is gokrazy's arm64 kernel (the module this repository builds
// QEMU images from) on QEMU's virt machine, whose PL061 is a real
// /dev/gpiochip0.
func arm64VM(t *testing.T) vmSpec {
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/gokrazy/kernel.arm64").Output()
	if err != nil {
		t.Fatalf("go mod download github.com/gokrazy/kernel.arm64: %v", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download: %v (%s)", err, out)
	}
	return vmSpec{
		qemu: "qemu-system-aarch64", debianPackage: "qemu-system-arm", goarch: "arm64",
		kernel: filepath.Join(mod.Dir, "vmlinuz"), console: "ttyAMA0",
		// -icount: the guest's clock counts executed instructions, not the
		// host's time, so a busy host cannot stretch a 50 ms blink; with
		// sleep=off, idle time passes at once.
		args: []string{"-M", "virt", "-cpu", "cortex-a72", "-icount", "shift=4,sleep=off"},
	}
}

// boot runs the VM. onLine sees every console line and may talk to the
// QEMU monitor and type a line on the guest's console.
func boot(t *testing.T, dir string, vm vmSpec, cmdline string, onLine func(line string, monitor func(cmd string), reply func(string))) vmResult {
	t.Helper()
	qemu := testtool.Path(t, vm.qemu, vm.debianPackage)
	if runtime.GOOS != "linux" {
		t.Fatal("the VM test needs Linux")
	}
	initrd := initramfs(t, dir, vm.goarch, vm.modDir, vm.mods, vm.extra)
	mon := filepath.Join(dir, "mon.sock")
	args := append([]string{
		"-m", "512", "-display", "none", "-serial", "stdio", "-no-reboot",
		"-nic", "none", "-monitor", "unix:" + mon + ",server=on,wait=off",
		"-kernel", vm.kernel, "-initrd", initrd,
		"-append", "console=" + vm.console + " panic=-1 loglevel=3 presscap.modules=" + strings.Join(vm.mods, ",") + " " + cmdline,
	}, vm.args...)
	// No KVM: nested KVM hangs on the shared build machines; TCG boots
	// this kernel in seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	// reply types a line on the guest's console.
	reply := func(line string) { fmt.Fprintf(stdin, "%s\n", line) }
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	monitor := func(c string) {
		conn, err := net.Dial("unix", mon)
		if err != nil {
			t.Errorf("monitor: %v", err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(conn, "%s\n", c)
		time.Sleep(300 * time.Millisecond) // let QEMU read it before the socket closes
	}
	var console strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		console.WriteString(line + "\n")
		if onLine != nil {
			onLine(line, monitor, reply)
		}
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the VM did not power off within the timeout:\n%s\n%s", console.String(), stderr.String())
	}
	if err != nil {
		t.Fatalf("qemu: %v\n%s\n%s", err, console.String(), stderr.String())
	}
	r := vmResult{console: console.String()}
	if wav := filepath.Join(dir, "out.wav"); fileExists(wav) {
		r.wav, r.rate, r.chans = readWAV(t, wav)
	}
	if wav2 := filepath.Join(dir, "out2.wav"); fileExists(wav2) {
		r.wav2, _, _ = readWAV(t, wav2)
	}
	return r
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// readWAV reads a PCM S16 WAV file as QEMU's wav audiodev writes it.
func readWAV(t *testing.T, p string) (samples []int16, rate, chans int) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 44 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		t.Fatalf("%s is not a WAV file", p)
	}
	le := binary.LittleEndian
	var bits int
	off := 12
	for off+8 <= len(b) {
		id, size := string(b[off:off+4]), int(le.Uint32(b[off+4:]))
		body := b[off+8:]
		switch id {
		case "fmt ":
			if le.Uint16(body) != 1 {
				t.Fatalf("WAV format %d, want PCM", le.Uint16(body))
			}
			chans, rate, bits = int(le.Uint16(body[2:])), int(le.Uint32(body[4:])), int(le.Uint16(body[14:]))
		case "data":
			if bits != 16 {
				t.Fatalf("WAV has %d bits a sample", bits)
			}
			// A device removed before QEMU exits may leave the size unset.
			if size == 0 || size > len(body) {
				size = len(body)
			}
			s := make([]int16, size/2)
			for i := range s {
				s[i] = int16(le.Uint16(body[2*i:]))
			}
			return s, rate, chans
		}
		off += 8 + size + size%2
	}
	t.Fatalf("%s has no data chunk", p)
	return nil, 0, 0
}

type segment struct {
	freq       float64
	ms         int
	peak       float64
	start, end int // windows
}

// segments cuts the left channel into tones: 10 ms windows are given a
// pitch (or none when quiet), runs of windows of one pitch become a
// segment, and each segment's pitch is measured again over its inner part.
// QEMU records only while a stream runs, so sounds follow each other
// without the pauses the guest left between them; the tones still part.
func segments(s []int16, chans, rate int) (segs []segment, dropouts int) {
	const quiet = 64 // well above rounding noise, far below a beep
	win := rate / 100
	n := len(s) / chans
	left := func(from, to int) ([]float64, float64) {
		x := make([]float64, 0, to-from)
		peak := 0.0
		for i := from; i < to; i++ {
			v := float64(s[i*chans])
			x = append(x, v)
			peak = math.Max(peak, math.Abs(v))
		}
		return x, peak
	}
	var pitches []float64
	for w := 0; (w+1)*win <= n; w++ {
		x, peak := left(w*win, (w+1)*win)
		p := 0.0
		if peak > quiet {
			p = tonetest.Dominant(x, rate, 100, 4000)
		}
		pitches = append(pitches, p)
	}
	same := func(a, b float64) bool { return math.Abs(a-b) <= 0.03*math.Max(a, b) }
	var out []segment
	for i := 0; i < len(pitches); {
		j := i
		for j < len(pitches) && same(pitches[j], pitches[i]) {
			j++
		}
		// Windows across a change of tone have a mixed pitch: a run that
		// short is a seam, not a tone.
		if pitches[i] != 0 && j-i >= 3 {
			x, peak := left((i+1)*win, (j-1)*win)
			sg := segment{freq: tonetest.Dominant(x, rate, 100, 4000), ms: (j - i) * 10, peak: peak, start: i, end: j}
			// A dropout in the emulated device (the host was busy) splits a
			// tone in two: one tone again if the pitch is the same and the
			// gap short.
			if k := len(out) - 1; k >= 0 && i-out[k].end <= 3 && math.Abs(out[k].freq-sg.freq) <= 0.01*sg.freq {
				out[k].ms += sg.ms + (i-out[k].end)*10
				out[k].end = j
				out[k].peak = math.Max(out[k].peak, sg.peak)
				dropouts++
			} else {
				out = append(out, sg)
			}
		}
		i = j
	}
	return out, dropouts
}

// ledSteps are the LED part of the VM run: state and how long to watch.
var ledSteps = []struct {
	state string
	flash bool
	ms    int
}{
	{"booting", false, 2200},
	{"saving", false, 1100},
	{"uploading", false, 2300},
	{"fault-no-disk", false, 3100},
	{"pressed", true, 2000},
}

// TestFeedbackInVM boots one VM (Debian's kernel under QEMU) and checks the
// beeper and the LEDs on the kernel's real drivers, each in a subtest.
func TestFeedbackInVM(t *testing.T) {
	testtool.NotShort(t, "boots a VM under QEMU")
	steps := "play:ack,play:saved,play:uploaded,play:fault," +
		"async:fault,sleep:250,unplug,fail:saved,replug,play:ack,busy:ack,trigger"
	for _, l := range ledSteps {
		verb := "led"
		if l.flash {
			verb = "ledflash"
		}
		steps += fmt.Sprintf(",%s:%s:%d", verb, l.state, l.ms)
	}
	dir := t.TempDir()
	r := boot(t, dir, amd64VM(t, dir), "presscap.volume=50 presscap.steps="+steps, func(line string, monitor func(string), reply func(string)) {
		switch line {
		case "UNPLUG-NOW":
			monitor("device_del snd0")
			reply("HOST-DONE")
		case "REPLUG-NOW":
			monitor("device_add usb-audio,id=snd1,audiodev=a1,bus=xhci.0")
			reply("HOST-DONE")
		}
	})
	t.Logf("guest:\n%s", grep(r.console, "UPTIME", "CARDS", "PLAYED", "QUEUED", "FAILED", "BUSY", "LOG", "LED", "PRESSCAP"))
	if !strings.Contains(r.console, "PRESSCAP-VMTEST-DONE") {
		t.Fatalf("guest did not finish:\n%s", r.console)
	}
	t.Run("sounds-and-unplug", func(t *testing.T) { checkSounds(t, r) })
	t.Run("leds", func(t *testing.T) { checkLEDs(t, r) })
	t.Run("trigger", func(t *testing.T) { checkTrigger(t, r) })
}

// checkTrigger reads the trigger check's verdicts (vmcheck): each must be
// there and ok.
func checkTrigger(t *testing.T, r vmResult) {
	t.Logf("trigger:\n%s", grep(r.console, "TRIGGER"))
	checks := []string{"takes-r400", "grab", "keyboard-ignored",
		"key-KEY_ESC", "key-KEY_DOT", "key-KEY_F5", "key-KEY_PAGEUP", "key-KEY_PAGEDOWN", "held-once", "replug"}
	for _, c := range checks {
		switch line := lastLine(r.console, "TRIGGER-CHECK "+c+" "); {
		case line == "":
			t.Errorf("%s: not checked", c)
		case !strings.HasSuffix(line, " ok"):
			t.Errorf("%s", line)
		}
	}
	if line := lastLine(r.console, "TRIGGER-CHECK run "); line != "" {
		t.Errorf("%s", line)
	}
}

// checkSounds finds each tone of each sound in QEMU's recording, in order,
// with its pitch, length and loudness; then checks the unplug: the card
// pulled while a sound plays (QEMU's device_del), a sound without it fails
// at once, and after the card is plugged back (device_add) the next plays.
func checkSounds(t *testing.T, r vmResult) {
	if r.rate != 48000 || r.chans != 2 {
		t.Fatalf("recording is %d Hz %d ch", r.rate, r.chans)
	}
	var want []segment
	for _, snd := range beeper.Sounds() {
		for _, sg := range snd.Segments() {
			if sg.Freq != 0 {
				want = append(want, segment{freq: sg.Freq, ms: int(sg.Dur / time.Millisecond)})
			}
		}
	}
	got, dropouts := segments(r.wav, r.chans, r.rate)
	after, dropouts2 := segments(r.wav2, r.chans, r.rate)
	t.Logf("%d dropout(s) of the emulated device mended", dropouts+dropouts2)
	// After the full sounds: what the device took of the fault before it
	// was pulled (maybe nothing).
	if len(got) < len(want) {
		t.Fatalf("recording has %d tones, want %d + the cut fault:\n got %+v\nwant %+v", len(got), len(want), got, want)
	}
	for i, w := range want {
		g := got[i]
		if math.Abs(g.freq-w.freq) > w.freq*0.01 {
			t.Errorf("tone %d measures %.1f Hz, want %v", i, g.freq, w.freq)
		}
		// 10 ms windows, a seam at each end.
		if g.ms < w.ms-30 || g.ms > w.ms+20 {
			t.Errorf("tone %d (%v Hz) lasts about %d ms, want %d", i, w.freq, g.ms, w.ms)
		}
		if want := 0.5 * math.MaxInt16; math.Abs(g.peak-want) > want*0.1 {
			t.Errorf("tone %d peaks at %.0f, want about %.0f (volume 50)", i, g.peak, want)
		}
	}
	cut := got[len(want):]
	if len(cut) > 0 && (cut[0].freq < 435 || cut[0].freq > 445) {
		t.Errorf("after the sounds comes %.1f Hz, want the fault's 440 Hz", cut[0].freq)
	}
	total := 0
	for _, c := range cut {
		total += c.ms
	}
	// On a slow host the unplug may come after the sound ended; then the
	// loss shows at the next sound instead.
	if cutShort := strings.Contains(r.console, "playing fault failed"); cutShort && total >= 1000 {
		t.Errorf("the fault played %d ms of 1000 although it failed", total)
	} else if !cutShort {
		t.Logf("the card was pulled after the fault had ended")
	}
	t.Logf("the fault played about %d ms before the card was pulled", total)
	// After the replug: the ack, then the ack played once the card was no
	// longer held by another process; the recording joins them.
	if len(after) != 1 || math.Abs(after[0].freq-1760) > 17.6 || after[0].ms < 200 || after[0].ms > 260 {
		t.Errorf("after the replug: %+v, want two acks (1760 Hz, 2 × 120 ms)", after)
	}
	if busy := grep(r.console, "BUSY"); !strings.Contains(busy, "device or resource busy") {
		t.Errorf("a sound on a card held by another process: %q, want EBUSY at once", busy)
	}
	// The loss is logged once and the return once.
	var logs []string
	for _, l := range strings.Split(r.console, "\n") {
		if strings.HasPrefix(l, "LOG ") {
			logs = append(logs, l)
		}
	}
	if len(logs) != 4 || !strings.Contains(logs[0], "skipped until") || !strings.Contains(logs[1], "back") ||
		!strings.Contains(logs[2], "busy") || !strings.Contains(logs[3], "back") {
		t.Errorf("beeper log = %q, want one line each for the loss, the return, the busy card and its release", logs)
	}
}

// checkLEDs compares the Caps Lock LED's changes, timed by the kernel,
// with each state's pattern, and checks the trigger handling.
func checkLEDs(t *testing.T, r vmResult) {
	before := ""
	if l := lastLine(r.console, "LED "); l != "" {
		f := strings.Fields(l)
		before = f[len(f)-1]
	}
	if before == "" {
		t.Fatal("the guest made no LED")
	}
	t.Logf("LED trigger before: %s", before)
	for _, step := range ledSteps {
		line := lastLine(r.console, "LEDPATTERN "+step.state+" ")
		if line == "" {
			t.Errorf("%s: no LEDPATTERN line", step.state)
			continue
		}
		f := strings.Fields(line)
		if f[2] != "trigger-while-shown=[none]" || f[3] != "trigger-after="+before {
			t.Errorf("%s: %s %s, want trigger none while shown and %s after", step.state, f[2], f[3], before)
		}
		comparePattern(t, step.state, step.flash, f[4:])
	}
}

// comparePattern checks a line's changes ("+507", "-520": lit or dark for
// that many ms, as measured in the guest) against the state's pattern:
// for a flash, 200 ms of Recording come first. Same levels in a row merge,
// since only changes are seen; the last change, cut short by Close, is
// not compared.
func comparePattern(t *testing.T, state string, flash bool, tokens []string) {
	t.Helper()
	// Under -icount the guest's timing does not depend on the host's load
	// (steps land within a few ms); 40 ms is still generous.
	const tolerance = 40 * time.Millisecond
	var got []time.Duration
	var gotOn []bool
	for _, d := range tokens {
		var ms int
		fmt.Sscanf(d[1:], "%d", &ms)
		got = append(got, time.Duration(ms)*time.Millisecond)
		gotOn = append(gotOn, d[0] == '+')
	}
	s, err := leds.ParseState(state)
	if err != nil {
		t.Fatal(err)
	}
	p := leds.PatternOf(s)
	var tl []leds.Step
	if flash {
		tl = append(tl, leds.Step{On: true, Dur: 200 * time.Millisecond})
		tl = append(tl, p.Steps...)
	} else {
		for i := 0; i < 10; i++ {
			tl = append(tl, p.Steps...)
		}
	}
	var want []leds.Step
	for _, st := range tl {
		if n := len(want); n > 0 && want[n-1].On == st.On {
			want[n-1].Dur += st.Dur
		} else {
			want = append(want, st)
		}
	}
	minChanges := 2
	if flash {
		minChanges = len(want) - 1
	}
	if len(got)-1 < minChanges {
		t.Errorf("%s: the LED changed %d times: %v, want at least %d", state, len(got), tokens, minChanges+1)
		return
	}
	// Should the emulated CPU stall all the same, up to two steps may be
	// off by up to 400 ms; the order and the count of changes may not.
	const hiccup, maxHiccups = 400 * time.Millisecond, 2
	hiccups := 0
	for i := 0; i < len(got)-1 && i < len(want); i++ {
		if gotOn[i] != want[i].On {
			t.Errorf("%s: change %d: on=%v, want on=%v (all: %v)", state, i, gotOn[i], want[i].On, tokens)
			return
		}
		d := got[i] - want[i].Dur
		if d < 0 {
			d = -d
		}
		if d > tolerance {
			hiccups++
		}
		if d > hiccup || hiccups > maxHiccups {
			t.Errorf("%s: change %d: on=%v for %v, want %v ±%v (all: %v)", state, i, gotOn[i], got[i], want[i].Dur, tolerance, tokens)
			return
		}
	}
}

// TestGPIOInArm64VM boots gokrazy's arm64 kernel on QEMU's virt machine
// and drives line 0 of its PL061 GPIO chip with the leds package through
// periph's gpioioctl driver, as the probe does on a Pi; debugfs shows the
// line's level to the guest's sampler, independently of the driver.
func TestGPIOInArm64VM(t *testing.T) {
	testtool.NotShort(t, "boots a VM under QEMU")
	steps := []struct {
		verb, state string
		ms          int
	}{
		{"gpio", "booting", 2200},
		{"gpiolow", "saving", 1100},
		{"gpio", "fault-disk-full", 3800},
		{"gpioflash", "pressed", 2000},
	}
	var script []string
	for _, st := range steps {
		script = append(script, fmt.Sprintf("%s:%s:%d", st.verb, st.state, st.ms))
	}
	script = append(script, "gpiobad:GPIO99", "gpiobad:42")
	dir := t.TempDir()
	r := boot(t, dir, arm64VM(t), "presscap.steps="+strings.Join(script, ","), nil)
	t.Logf("guest:\n%s", grep(r.console, "UPTIME", "GPIO", "PRESSCAP"))
	if !strings.Contains(r.console, "PRESSCAP-VMTEST-DONE") {
		t.Fatalf("guest did not finish:\n%s", r.console)
	}
	for _, st := range steps {
		line := lastLine(r.console, "GPIOPATTERN "+st.state+" ")
		if line == "" {
			t.Errorf("%s: no GPIOPATTERN line", st.state)
			continue
		}
		f := strings.Fields(line)
		low := st.verb == "gpiolow"
		wantOff := "after-close=lo"
		if low {
			wantOff = "after-close=hi"
		}
		if f[2] != fmt.Sprintf("active-low=%v", low) || f[4] != wantOff {
			t.Errorf("%s: %s %s, want the LED off after Close (%s)", st.state, f[2], f[4], wantOff)
		}
		// periph names the line's consumer after the program.
		if !strings.Contains(f[3], "init") {
			t.Errorf("%s: line consumer %s, want the probe's (init@pid)", st.state, f[3])
		}
		comparePattern(t, st.state, st.verb == "gpioflash", f[5:])
	}
	bad := grep(r.console, "GPIOBAD")
	if strings.Count(bad, "leds.gpio_line") != 2 {
		t.Errorf("bad lines: %q, want two errors naming leds.gpio_line", bad)
	}
}

// lastLine returns the last line of s that starts with prefix, or "".
func lastLine(s, prefix string) string {
	line := ""
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			line = l
		}
	}
	return line
}

func grep(s string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}

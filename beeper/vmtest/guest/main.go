//go:build linux

// Command guest is the /init of the beeper's VM test: it loads the USB and
// sound modules named on the kernel command line, waits for a USB sound
// card, plays the sounds the command line lists with the real beeper
// package, reports on the console and powers the VM off.
//
// Kernel command line: presscap.modules=a.ko,b.ko (paths under
// /lib/modules, in load order), presscap.volume=N and presscap.steps, a
// comma-separated script:
//
//	play:NAME   PlayWait must succeed
//	async:NAME  Play (returns at once)
//	sleep:MS
//	unplug      ask the host to pull the card (UNPLUG-NOW), wait until it is gone
//	fail:NAME   PlayWait must fail, and soon
//	replug      ask the host to plug the card back (REPLUG-NOW), wait for it
//	led:STATE:MS       show STATE on a uinput Caps Lock LED for MS, print its changes
//	ledflash:STATE:MS  the same with Flash over Recording
//	gpio:STATE:MS, gpiolow:STATE:MS, gpioflash:STATE:MS
//	                   the same on line 0 of the first GPIO chip (active high,
//	                   active low, flash), watched through debugfs
//	gpiobad:LINE       leds.New must refuse line LINE, naming leds.gpio_line
//	busy:NAME          hold the USB card's PCM open: PlayWait must fail at
//	                   once; then release it: PlayWait must play
//	trigger            run /bin/vmcheck /etc/presscap/config.json (the
//	                   probe's trigger watcher on uinput devices), whose
//	                   TRIGGER-CHECK lines the host judges
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/presscap/presscap/beeper"
	"github.com/presscap/presscap/leds"
)

func main() {
	err := run()
	if err != nil {
		fmt.Printf("PRESSCAP-VMTEST-FAIL %v\n", err)
	} else {
		fmt.Println("PRESSCAP-VMTEST-DONE")
	}
	unix.Sync()
	// Let the serial port send everything before the machine goes away
	// (tcdrain).
	unix.IoctlSetInt(1, unix.TCSBRK, 1)
	time.Sleep(100 * time.Millisecond)
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func mounts() error {
	for _, m := range []struct{ src, dst, typ string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.typ, 0, ""); err != nil && err != unix.EBUSY {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	return nil
}

func cmdline() (map[string]string, error) {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil, err
	}
	args := map[string]string{}
	for _, f := range strings.Fields(string(b)) {
		if k, v, ok := strings.Cut(f, "="); ok && strings.HasPrefix(k, "presscap.") {
			args[strings.TrimPrefix(k, "presscap.")] = v
		}
	}
	return args, nil
}

func loadModules(list string) error {
	for _, m := range strings.Split(list, ",") {
		if m == "" {
			continue
		}
		f, err := os.Open(filepath.Join("/lib/modules", m))
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && err != unix.EEXIST {
			return fmt.Errorf("load %s: %w", m, err)
		}
	}
	return nil
}

// waitCard waits until /proc/asound/cards lists a USB card (present) or
// none (absent).
func waitCard(present bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile("/proc/asound/cards")
		if strings.Contains(string(b), "USB-Audio") == present {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no change of the USB sound card (want present=%v) within %v", present, timeout)
}

// waitHost reads the console until the host says it has done what was
// asked. Polling instead would not do: under -icount with sleep=off an idle
// guest's clock runs far ahead of the host's.
func waitHost() error {
	buf := make([]byte, 1)
	var line []byte
	for {
		if _, err := os.Stdin.Read(buf); err != nil {
			return fmt.Errorf("read console: %w", err)
		}
		if buf[0] == '\n' || buf[0] == '\r' {
			if strings.TrimSpace(string(line)) == "HOST-DONE" {
				return nil
			}
			line = line[:0]
			continue
		}
		line = append(line, buf[0])
	}
}

// up returns the seconds since boot, to see where a slow run spends them.
func up() string {
	b, _ := os.ReadFile("/proc/uptime")
	return strings.Fields(string(b) + " ?")[0]
}

func do(bp *beeper.Beeper, step string) error {
	verb, arg, _ := strings.Cut(step, ":")
	start := time.Now()
	took := func() time.Duration { return time.Since(start).Round(time.Millisecond) }
	switch verb {
	case "play", "async", "fail":
		s, err := beeper.ParseSound(arg)
		if err != nil {
			return err
		}
		switch verb {
		case "async":
			bp.Play(s)
			fmt.Printf("QUEUED %v in %v\n", s, took())
		case "play":
			if err := bp.PlayWait(context.Background(), s); err != nil {
				return err
			}
			fmt.Printf("PLAYED %v in %v\n", s, took())
		case "fail":
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := bp.PlayWait(ctx, s)
			if err == nil || ctx.Err() != nil {
				return fmt.Errorf("PlayWait without a card = %v after %v, want a prompt error", err, took())
			}
			fmt.Printf("FAILED %v in %v: %v\n", s, took(), err)
		}
	case "led", "ledflash":
		state, ms, _ := strings.Cut(arg, ":")
		n, err := strconv.Atoi(ms)
		if err != nil {
			return err
		}
		return ledStep(state, verb == "ledflash", time.Duration(n)*time.Millisecond)
	case "gpio", "gpiolow", "gpioflash":
		state, ms, _ := strings.Cut(arg, ":")
		n, err := strconv.Atoi(ms)
		if err != nil {
			return err
		}
		return gpioStep(state, verb == "gpioflash", verb == "gpiolow", time.Duration(n)*time.Millisecond)
	case "gpiobad":
		_, err := leds.New(leds.Config{Driver: leds.DriverGPIO, GPIOLine: arg})
		if err == nil {
			return fmt.Errorf("line %q was accepted", arg)
		}
		fmt.Printf("GPIOBAD %v\n", err)
	case "busy":
		snd, err := beeper.ParseSound(arg)
		if err != nil {
			return err
		}
		m, _ := filepath.Glob("/dev/snd/pcmC*D0p")
		if len(m) != 1 {
			return fmt.Errorf("want one playback device, have %v", m)
		}
		fd, err := unix.Open(m[0], unix.O_WRONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = bp.PlayWait(ctx, snd)
		fmt.Printf("BUSY %v in %v: %v\n", snd, took(), err)
		unix.Close(fd)
		if err == nil || ctx.Err() != nil {
			return fmt.Errorf("PlayWait on a busy card = %v, want a prompt error", err)
		}
		start = time.Now()
		if err := bp.PlayWait(context.Background(), snd); err != nil {
			return fmt.Errorf("after the card was released: %w", err)
		}
		fmt.Printf("PLAYED %v in %v\n", snd, took())
	case "trigger":
		cmd := exec.Command("/bin/vmcheck", "/etc/presscap/config.json")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
		err := cmd.Run()
		fmt.Printf("TRIGGER-EXIT %v in %v\n", err, took())
	case "sleep":
		ms, err := strconv.Atoi(arg)
		if err != nil {
			return err
		}
		time.Sleep(time.Duration(ms) * time.Millisecond)
	case "unplug":
		fmt.Println("UNPLUG-NOW")
		if err := waitHost(); err != nil {
			return err
		}
		return waitCard(false, 30*time.Second)
	case "replug":
		fmt.Println("REPLUG-NOW")
		if err := waitHost(); err != nil {
			return err
		}
		return waitCard(true, 30*time.Second)
	default:
		return fmt.Errorf("unknown step")
	}
	return nil
}

type stdoutLog struct{}

func (stdoutLog) Printf(f string, a ...any) { fmt.Printf("LOG "+f+"\n", a...) }

func run() error {
	if err := mounts(); err != nil {
		return err
	}
	args, err := cmdline()
	if err != nil {
		return err
	}
	fmt.Printf("UPTIME init %s\n", up())
	if err := loadModules(args["modules"]); err != nil {
		return err
	}
	fmt.Printf("UPTIME modules %s\n", up())
	if strings.Contains(args["steps"], "play:") {
		if err := waitCard(true, 30*time.Second); err != nil {
			return err
		}
		fmt.Printf("UPTIME card %s\n", up())
		b, _ := os.ReadFile("/proc/asound/cards")
		fmt.Printf("CARDS %q\n", string(b))
	}
	cfg := beeper.DefaultConfig()
	if v, err := strconv.Atoi(args["volume"]); err == nil {
		cfg.Volume = v
	}
	bp := beeper.New(cfg, stdoutLog{})
	defer bp.Close()
	for _, step := range strings.Split(args["steps"], ",") {
		if err := do(bp, step); err != nil {
			return fmt.Errorf("step %s: %w", step, err)
		}
	}
	return nil
}

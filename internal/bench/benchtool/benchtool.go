// Package benchtool holds what the benchmark harnesses (make bench-capture,
// make bench-inline) share: a capture tool run in a namespace under GNU
// time, counting what a tool wrote by reading it, and interface counters.
package benchtool

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/presscap/presscap/ringfs"
)

// Timed is a tool running inside a namespace, pinned to one CPU, under
// /usr/bin/time, which gives its CPU seconds and peak RSS.
type Timed struct {
	name     string
	cmd      *exec.Cmd
	timeFile string
	stdout   bytes.Buffer
	mu       sync.Mutex
	stderr   bytes.Buffer
}

// StartTimed starts argv in namespace ns on CPU cpu, writing GNU time's
// account to timeFile, and returns once the tool printed ready on stderr.
func StartTimed(ns string, cpu int, timeFile, ready string, argv ...string) (*Timed, error) {
	full := append([]string{"netns", "exec", ns, "taskset", "-c", strconv.Itoa(cpu), "/usr/bin/time", "-f", "%U %S %M", "-o", timeFile}, argv...)
	t := &Timed{name: filepath.Base(argv[0]), cmd: exec.Command("ip", full...), timeFile: timeFile}
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t.cmd.Stdout = &t.stdout
	stderr, err := t.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := t.cmd.Start(); err != nil {
		return nil, err
	}
	readyc := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			t.mu.Lock()
			t.stderr.WriteString(sc.Text() + "\n")
			t.mu.Unlock()
			if !signalled && strings.Contains(sc.Text(), ready) {
				readyc <- true
				signalled = true
			}
		}
		if !signalled {
			readyc <- false
		}
	}()
	select {
	case ok := <-readyc:
		if !ok {
			t.cmd.Wait()
			return nil, fmt.Errorf("%s did not start: %s", t.name, t.Stderr())
		}
	case <-time.After(30 * time.Second):
		t.Kill()
		return nil, fmt.Errorf("%s not ready after 30s", t.name)
	}
	return t, nil
}

// Stderr is what the tool printed on stderr so far.
func (t *Timed) Stderr() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stderr.String()
}

// Stdout is what the tool printed on stdout; read it after Stop.
func (t *Timed) Stdout() string { return t.stdout.String() }

// Kill ends the tool at once.
func (t *Timed) Kill() {
	syscall.Kill(-t.cmd.Process.Pid, syscall.SIGKILL)
	t.cmd.Wait()
}

// Stop interrupts the tool (GNU time ignores SIGINT while it waits; the
// tool gets it), waits up to 60 s and returns its CPU seconds (user +
// system) and peak RSS in KiB.
func (t *Timed) Stop() (cpu float64, rssKiB int64, err error) {
	syscall.Kill(-t.cmd.Process.Pid, syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- t.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		syscall.Kill(-t.cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return 0, 0, fmt.Errorf("%s did not stop within 60s", t.name)
	}
	tb, err := os.ReadFile(t.timeFile)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: no time output: %v: %s", t.name, err, t.Stderr())
	}
	var user, sys float64
	if _, err := fmt.Sscan(LastLine(string(tb)), &user, &sys, &rssKiB); err != nil {
		return 0, 0, fmt.Errorf("%s: time output %q: %v", t.name, tb, err)
	}
	return user + sys, rssKiB, nil
}

// LastLine is the last non-empty line of s.
func LastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// Counters returns the packets dev in namespace ns received and sent.
func Counters(ns, dev string) (rx, tx uint64, err error) {
	out, err := exec.Command("ip", "-n", ns, "-s", "-j", "link", "show", "dev", dev).CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("ip -s link show %s: %v: %s", dev, err, out)
	}
	type count struct {
		Packets uint64 `json:"packets"`
	}
	var v []struct {
		Stats64 struct {
			RX count `json:"rx"`
			TX count `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &v); err != nil || len(v) == 0 {
		return 0, 0, fmt.Errorf("ip -s -j link: %v: %s", err, out)
	}
	return v[0].Stats64.RX.Packets, v[0].Stats64.TX.Packets, nil
}

// CountRing counts the records of a ring by reading it.
func CountRing(dir string) (uint64, error) {
	r, err := ringfs.Open(dir, ringfs.Options{ReadOnly: true})
	if err != nil {
		return 0, err
	}
	defer r.Close()
	var n uint64
	_, err = r.Read(context.Background(), 0, math.MaxInt64, func(ringfs.Record) error {
		n++
		return nil
	})
	return n, err
}

// CountPcaps counts the packets in every PCAP file of a directory; a file
// cut short (a tool stopped mid-write) counts what it holds.
func CountPcaps(dir string) (uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var n uint64
	for _, name := range names {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return n, err
		}
		rd, err := pcapgo.NewReader(bufio.NewReaderSize(f, 1<<20))
		if err != nil {
			f.Close()
			return n, fmt.Errorf("%s: %w", name, err)
		}
		for {
			_, _, err := rd.ZeroCopyReadPacketData()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					f.Close()
					return n, fmt.Errorf("%s: %w", name, err)
				}
				break
			}
			n++
		}
		f.Close()
	}
	return n, nil
}

// Median returns the middle value of v (the lower one of the middle two
// for an even count), leaving v unchanged.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

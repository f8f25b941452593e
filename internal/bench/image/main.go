// Command image is make bench-image: the image build's time with an empty
// and with a warm Go build cache, the image's size (apparent and
// allocated, the root squashfs, the used boot FAT), then the system tests'
// boot, press and update figures (their "bench:" lines). Figures in
// docs/dev/benchmarks.md ("The appliance image").
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	imagetool := flag.String("imagetool", "build/imagetool", "the image tool (go build -o build/imagetool ./image)")
	instance := flag.String("instance", "gokrazy/presscap", "the instance to build")
	dir := flag.String("dir", "build", "where the image and the tool's work directory go (removed after)")
	gobin := flag.String("go", "go", "the go command, for the system tests")
	systemtest := flag.Bool("systemtest", true, "also run the system tests and print their bench: lines")
	flag.Parse()
	ctx := context.Background()
	if err := measureBuild(ctx, os.Stdout, *imagetool, *instance, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "bench-image:", err)
		os.Exit(1)
	}
	if *systemtest {
		if err := systemTests(ctx, os.Stdout, *gobin); err != nil {
			fmt.Fprintln(os.Stderr, "bench-image:", err)
			os.Exit(1)
		}
	}
}

func measureBuild(ctx context.Context, out io.Writer, imagetool, instance, dir string) error {
	img := filepath.Join(dir, "bench.img")
	work := filepath.Join(dir, "_bench")
	defer os.RemoveAll(work)
	defer os.Remove(img)
	cache, err := os.MkdirTemp("", "bench-image-gocache-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cache)
	build := func(env ...string) (time.Duration, error) {
		cmd := exec.CommandContext(ctx, imagetool, "build", "-instance", instance, "-o", img, "-workdir", work)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stderr = os.Stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("%s build: %w", imagetool, err)
		}
		return time.Since(start), nil
	}
	cold, err := build("GOCACHE=" + cache)
	if err != nil {
		return err
	}
	warm, err := build()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "bench: image build, empty Go cache %.1f s, warm %.1f s (warm/cold %.2f)\n",
		cold.Seconds(), warm.Seconds(), warm.Seconds()/cold.Seconds())

	st, err := os.Stat(img)
	if err != nil {
		return err
	}
	info, err := exec.CommandContext(ctx, imagetool, "info", "-image", img).Output()
	if err != nil {
		return fmt.Errorf("%s info: %w", imagetool, err)
	}
	root, boot, err := parseInfo(string(info))
	if err != nil {
		return err
	}
	allocated := st.Sys().(*syscall.Stat_t).Blocks * 512
	fmt.Fprintf(out, "bench: %s %d MiB apparent, %d MiB allocated; root squashfs %d KiB, boot FAT used %d KiB\n",
		filepath.Base(instance)+".img", st.Size()>>20, allocated>>20, root>>10, boot>>10)
	return nil
}

var (
	rootLine = regexp.MustCompile(`(?m)^root (\d+) bytes$`)
	bootLine = regexp.MustCompile(`(?m)^boot (\d+) bytes used$`)
)

// parseInfo reads the root squashfs's and the used boot FAT's sizes from
// `imagetool info`.
func parseInfo(info string) (root, boot int64, err error) {
	r, b := rootLine.FindStringSubmatch(info), bootLine.FindStringSubmatch(info)
	if r == nil || b == nil {
		return 0, 0, fmt.Errorf("imagetool info gave no root or boot size:\n%s", info)
	}
	root, _ = strconv.ParseInt(r[1], 10, 64)
	boot, _ = strconv.ParseInt(b[1], 10, 64)
	return root, boot, nil
}

// systemTests runs the QEMU system tests and prints their figures and
// results only; their failure is this program's.
func systemTests(ctx context.Context, out io.Writer, gobin string) error {
	cmd := exec.CommandContext(ctx, gobin, "test", "-count=1", "-tags", "systemtest", "-timeout", "15m", "-v", "./image/systemtest/")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if l := sc.Text(); keep(l) {
			fmt.Fprintln(out, l)
		}
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("system tests: %w", err)
	}
	return nil
}

// keep says whether a line of `go test -v` output is a figure or a
// result.
func keep(line string) bool {
	return strings.Contains(line, "bench:") || strings.HasPrefix(line, "--- ") ||
		strings.HasPrefix(line, "ok") || strings.HasPrefix(line, "FAIL")
}

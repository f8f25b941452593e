// Command probe is the presscap back-in-time capture probe. With no
// subcommand it runs the service that gokrazy starts at boot; the
// subcommands are the tools a provider, an installer and the tests use.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// env is what a subcommand may touch of the process, so that tests can run
// subcommands in-process with their own streams.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

type command struct {
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

// commands lists every subcommand. Each lives in its own cmd_*.go file.
func commands() map[string]command {
	return map[string]command{
		"run":     {"run the probe service (the default)", runService},
		"check":   {"validate a configuration file", runCheck},
		"trigger": {"press the button of a running service", runTrigger},
		"ring":    {"ring maintenance: import, info", runRing},
		"extract": {"cut a time window out of a ring into a PCAP file", runExtract},
		"filter":  {"compile a capture filter and print the BPF program", runFilter},
		"capture": {"record interfaces into a ring", runCapture},
		"beep":    {"play a sound on the speaker", runBeep},
		"led":     {"show an LED state's pattern", runLED},
		"upload":  {"upload the queue by SFTP", runUpload},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, env{os.Stdin, os.Stdout, os.Stderr}, os.Args[1:])
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "probe:", err)
		}
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, e env, args []string) error {
	name := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if name == "help" {
		usage(e.stdout)
		return nil
	}
	cmd, ok := commands()[name]
	if !ok {
		usage(e.stderr)
		return fmt.Errorf("unknown subcommand %q", name)
	}
	return cmd.run(ctx, e, args)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: probe [subcommand] [flags]")
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, cmds[n].summary)
	}
}

// newFlagSet returns a flag set that reports errors instead of exiting, so
// subcommands behave the same in tests and on the device.
func newFlagSet(name string, e env) *flag.FlagSet {
	fs := flag.NewFlagSet("probe "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

// parseFlags parses args for a subcommand that takes only flags: a
// positional argument is an error that names it.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", strings.TrimPrefix(fs.Name(), "probe "), fs.Arg(0))
	}
	return nil
}

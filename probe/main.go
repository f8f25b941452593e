// Command probe is the presscap back-in-time capture probe. With no
// subcommand it runs the service that gokrazy starts at boot; the
// subcommands are the tools a provider, an installer and the tests use.
package main

import (
	"context"
	"encoding/json"
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
	// sysRoot is where the service finds the probe's id and gokrazy's
	// files: "" is "/"; tests give a fake tree.
	sysRoot string
}

type command struct {
	// args is the synopsis after "probe NAME" in the usage line.
	args    string
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

// commands lists every subcommand. Each lives in its own cmd_*.go file.
func commands() map[string]command {
	return map[string]command{
		"run":     {"[-config FILE]", "run the probe service (the default)", runService},
		"check":   {"[-config FILE] [-print-default]", "validate a configuration file", runCheck},
		"trigger": {"[-config FILE] [-addr HOST:PORT] [-token TOKEN]", "press the button of a running service", runTrigger},
		"ring":    {"(import | info) -ring DIR [flags] [FILE...]", "ring maintenance: import, info", runRing},
		"extract": {"-ring DIR (-from T -to T | -at T -before D -after D) -o FILE [flags]", "cut a time window out of a ring into a PCAP file", runExtract},
		"filter":  {"[-live] [-d | -dd | -ddd] [-s SNAPLEN] EXPRESSION...", "compile a capture filter and print the BPF program", runFilter},
		"capture": {"-iface IF[,IF...] -ring DIR [flags]", "record interfaces into a ring", runCapture},
		"network": {"[-config FILE] [-watch]", "set up the network mode (inline bridge, mirror ports) and watch the ports", runNetwork},
		"beep":    {"[-sound NAME] [flags]", "play a sound on the speaker", runBeep},
		"led":     {"[-state NAME [-for D]] [flags]", "show an LED state's pattern", runLED},
		"upload":  {"[-config FILE] (-now | -test | -key)", "upload the queue by SFTP", runUpload},
		"report":  {"[-o FILE.html] [-json] [flags] FILE.pcap", "analyse a capture file: VoIP, DNS, TCP and findings", runReport},
		"fleet":   {"[-json] [-key FILE -host-key KEY] DIR|sftp://USER@HOST/DIR | enroll | password | password-key", "list the probes' health from their reports on the server; enrol a probe; a probe's password", runFleet},
	}
}

// subUsage holds the synopses of subcommands that have their own
// subcommands, by their full name.
var subUsage = map[string]string{
	"ring import": "-ring DIR [-size SIZE] [-link NAME] [flags] FILE...",
	"ring info":   "-ring DIR [-json]",
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode prints err once and returns the exit status, as the go tool
// does: 0 for success and for help asked for with -h, 2 for a usage error
// (already printed with the usage by the flag package), else 1.
func exitCode(err error, stderr io.Writer) int {
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		if !ue.printed {
			fmt.Fprintln(stderr, "probe:", err)
		}
		return 2
	}
	fmt.Fprintln(stderr, "probe:", err)
	return 1
}

// usageError is a command line the program does not understand. printed
// says the flag package already showed it with the usage.
type usageError struct {
	err     error
	printed bool
}

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// isHelp reports whether arg asks for help the way Go programs accept.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// dispatch runs the subcommand args name. No subcommand (or only flags)
// is `run`: gokrazy starts the service as `probe run`, and a bare `probe`
// must stay the service too.
func dispatch(ctx context.Context, e env, args []string) error {
	if len(args) > 0 && isHelp(args[0]) {
		if len(args) > 1 && args[0] == "help" {
			return help(ctx, e, args[1:])
		}
		usage(e.stdout)
		return nil
	}
	name := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	cmd, ok := commands()[name]
	if !ok {
		usage(e.stderr)
		return usageError{err: fmt.Errorf("unknown subcommand %q", name)}
	}
	return cmd.run(ctx, e, args)
}

// help is `probe help SUB [SUBSUB]`: the subcommand's usage on stdout, got
// by asking the subcommand itself for -h so the flags are its own.
func help(ctx context.Context, e env, args []string) error {
	cmd, ok := commands()[args[0]]
	if !ok {
		return usageError{err: fmt.Errorf("help %s: unknown subcommand; run 'probe help' for the list", args[0])}
	}
	out := env{stdin: e.stdin, stdout: e.stdout, stderr: e.stdout}
	err := cmd.run(ctx, out, append(args[1:], "-h"))
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Probe is the presscap back-in-time capture probe. With no subcommand it
runs the service, as gokrazy starts it at boot.

Usage:

	probe [subcommand] [flags]

The subcommands are:

`)
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "\t%-8s %s\n", n, cmds[n].summary)
	}
	fmt.Fprint(w, "\nUse \"probe help <subcommand>\" for more information about a subcommand.\n")
}

// newFlagSet returns a flag set that reports errors instead of exiting, so
// subcommands behave the same in tests and on the device. Its usage names
// the subcommand's synopsis, summary and flags.
func newFlagSet(name string, e env) *flag.FlagSet {
	fs := flag.NewFlagSet("probe "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		w := fs.Output()
		synopsis, summary := subUsage[name], ""
		if c, ok := commands()[name]; ok {
			synopsis, summary = c.args, c.summary
		}
		fmt.Fprintf(w, "usage: probe %s %s\n", name, synopsis)
		if summary != "" {
			fmt.Fprintf(w, "\n%s%s.\n", strings.ToUpper(summary[:1]), summary[1:])
		}
		fmt.Fprintln(w, "\nFlags:")
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses args for a subcommand that also takes positional
// arguments. A bad flag is a usage error the flag package has printed.
func parseArgs(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return usageError{err: err, printed: true}
	}
	return err
}

// parseArgsN parses args for a subcommand that takes exactly n positional
// arguments; want says which, in the error when they are not n.
func parseArgsN(fs *flag.FlagSet, args []string, n int, want string) error {
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != n {
		return usageError{err: fmt.Errorf("%s: want %s", strings.TrimPrefix(fs.Name(), "probe "), want)}
	}
	return nil
}

// parseFlags parses args for a subcommand that takes only flags: a
// positional argument is an error that names it.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{err: fmt.Errorf("%s: unexpected argument %q", strings.TrimPrefix(fs.Name(), "probe "), fs.Arg(0))}
	}
	return nil
}

// printJSON prints v for scripts and readers alike: indented, one line
// a field.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDispatchUnknownSubcommand(t *testing.T) {
	var out, errb bytes.Buffer
	err := dispatch(context.Background(), env{stdout: &out, stderr: &errb}, []string{"frobnicate"})
	if err == nil || !strings.Contains(err.Error(), `"frobnicate"`) {
		t.Fatalf("dispatch(frobnicate) = %v, want an error naming the subcommand", err)
	}
	if !strings.Contains(errb.String(), "extract") {
		t.Errorf("usage on stderr does not list the subcommands: %q", errb.String())
	}
	var printed bytes.Buffer
	if code := exitCode(err, &printed); code != 2 || strings.Count(printed.String(), "frobnicate") != 1 {
		t.Errorf("exit %d, printed %q: want 2 and the error once", code, printed.String())
	}
}

// TestHelpListsEverySubcommand: -h, -help, --help and help all print the
// list with each subcommand's line on stdout and exit 0, as the go tool.
func TestHelpListsEverySubcommand(t *testing.T) {
	for _, arg := range []string{"help", "-h", "-help", "--help"} {
		var out, errb bytes.Buffer
		err := dispatch(context.Background(), env{stdout: &out, stderr: &errb}, []string{arg})
		if code := exitCode(err, &errb); code != 0 {
			t.Errorf("probe %s: exit %d (%v)", arg, code, err)
		}
		for name, c := range commands() {
			if !strings.Contains(out.String(), "\t"+name+" ") || !strings.Contains(out.String(), c.summary) {
				t.Errorf("probe %s does not list %q with its summary:\n%s", arg, name, out.String())
			}
		}
		if errb.Len() != 0 {
			t.Errorf("probe %s wrote to stderr: %q", arg, errb.String())
		}
	}
}

// TestHelpSubcommand: `probe help SUB` prints SUB's usage (synopsis,
// summary, flags) on stdout and exits 0; `probe SUB -h` prints the same on
// stderr and exits 0.
func TestHelpSubcommand(t *testing.T) {
	for name, c := range commands() {
		out, errs, err := runCmd(t, "help", name)
		if err != nil || errs != "" {
			t.Errorf("probe help %s: %v, stderr %q", name, err, errs)
		}
		if !strings.HasPrefix(out, "usage: probe "+name+" ") || !strings.Contains(strings.ToLower(out), strings.ToLower(c.summary)) {
			t.Errorf("probe help %s:\n%s", name, out)
		}
		_, errs, err = runCmd(t, name, "-h")
		if code := exitCode(err, &bytes.Buffer{}); code != 0 {
			t.Errorf("probe %s -h: exit %d (%v)", name, code, err)
		}
		if !strings.Contains(errs, "usage: probe "+name+" ") {
			t.Errorf("probe %s -h:\n%s", name, errs)
		}
	}
	if _, _, err := runCmd(t, "help", "frob"); exitCode(err, &bytes.Buffer{}) != 2 || !strings.Contains(err.Error(), "frob") {
		t.Errorf("probe help frob = %v, want a usage error naming it", err)
	}
}

// TestFlagHelpReadsCleanly: each flag's line in every -h is "-name" and at
// most one placeholder word; back-quotes in a flag's help text would make
// the quoted words the placeholder ("-config probe check").
func TestFlagHelpReadsCleanly(t *testing.T) {
	var names [][]string
	for name := range commands() {
		names = append(names, []string{name})
	}
	names = append(names, []string{"ring", "import"}, []string{"ring", "info"})
	for _, n := range names {
		_, errs, _ := runCmd(t, append(n, "-h")...)
		flags := 0
		for _, line := range strings.Split(errs, "\n") {
			if !strings.HasPrefix(line, "  -") {
				continue
			}
			flags++
			// A one-letter flag's help follows on the same line after a tab.
			head, _, _ := strings.Cut(line, "\t")
			if f := strings.Fields(head); len(f) > 2 {
				t.Errorf("probe %s -h: flag line %q has a placeholder of %d words", strings.Join(n, " "), line, len(f)-1)
			}
		}
		if flags == 0 {
			t.Errorf("probe %s -h lists no flags:\n%s", strings.Join(n, " "), errs)
		}
	}
}

// TestBareProbeRunsTheService: with no subcommand, or only flags, probe is
// the service (here with a bad configuration, which it reports and waits
// on), since that is what gokrazy may start.
func TestBareProbeRunsTheService(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(p, []byte(`{"exports": [{"name": "a/b"}]}`), 0o644)
	t.Setenv("PRESSCAP_CONFIG", p)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, args := range [][]string{nil, {"-config", p}} {
		var out, errb bytes.Buffer
		err := dispatch(ctx, env{stdout: &out, stderr: &errb}, args)
		if err == nil || !strings.Contains(err.Error(), "exports[0].name") || !strings.Contains(out.String(), "NOT RUNNING") {
			t.Errorf("probe %q = %v, stdout %q: want the service refusing the configuration", args, err, out.String())
		}
	}
}

// TestGokrazyStartsTheService: every gokrazy instance starts probe as the
// service (`run`, or nothing).
func TestGokrazyStartsTheService(t *testing.T) {
	files, _ := filepath.Glob("../gokrazy/*/config.json")
	if len(files) == 0 {
		t.Fatal("no gokrazy instance found")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var inst struct {
			PackageConfig map[string]struct{ CommandLineFlags []string }
		}
		if err := json.Unmarshal(b, &inst); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		flags := inst.PackageConfig["github.com/presscap/presscap/probe"].CommandLineFlags
		if len(flags) > 0 && flags[0] != "run" && flags[0][0] != '-' {
			t.Errorf("%s starts probe %q, not the service", f, flags)
		}
	}
}

func TestExitCode(t *testing.T) {
	var b bytes.Buffer
	for _, c := range []struct {
		err   error
		code  int
		print bool
	}{
		{nil, 0, false},
		{flag.ErrHelp, 0, false},
		{usageError{err: errors.New("bad flag"), printed: true}, 2, false},
		{usageError{err: errors.New("bad argument")}, 2, true},
		{errors.New("disk gone"), 1, true},
	} {
		b.Reset()
		if got := exitCode(c.err, &b); got != c.code || (b.Len() > 0) != c.print {
			t.Errorf("exitCode(%v) = %d, printed %q", c.err, got, b.String())
		}
	}
}

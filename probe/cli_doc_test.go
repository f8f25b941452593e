package main

import (
	"maps"
	"regexp"
	"slices"
	"testing"

	"github.com/presscap/presscap/internal/testing/doctable"
)

// TestCLIReferenceNamesEveryCommand: the command table of
// docs/reference/cli.md names every subcommand `probe help` lists, and
// none that does not exist.
func TestCLIReferenceNamesEveryCommand(t *testing.T) {
	const doc = "../docs/reference/cli.md"
	table, err := doctable.Read(doc, "# Command line")
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	re := regexp.MustCompile(`probe \[?([a-z]+)`)
	for _, row := range table[1:] {
		for _, m := range re.FindAllStringSubmatch(row[0], -1) {
			named[m[1]] = true
		}
	}
	cmds := commands()
	for _, name := range slices.Sorted(maps.Keys(cmds)) {
		if !named[name] {
			t.Errorf("%s: the command table does not name probe %s", doc, name)
		}
	}
	for name := range named {
		if _, ok := cmds[name]; !ok {
			t.Errorf("%s: the command table names probe %s, which is no subcommand", doc, name)
		}
	}
}

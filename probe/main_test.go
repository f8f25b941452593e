package main

import (
	"bytes"
	"context"
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
}

func TestHelpListsEverySubcommand(t *testing.T) {
	var out bytes.Buffer
	if err := dispatch(context.Background(), env{stdout: &out, stderr: &out}, []string{"help"}); err != nil {
		t.Fatal(err)
	}
	for name := range commands() {
		if !strings.Contains(out.String(), "  "+name+" ") {
			t.Errorf("help does not list %q:\n%s", name, out.String())
		}
	}
}

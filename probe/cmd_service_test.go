package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/presscap/presscap/probe/config"
)

func TestCheckPrintDefaultIsValid(t *testing.T) {
	var out, errb bytes.Buffer
	if err := dispatch(context.Background(), env{stdout: &out, stderr: &errb}, []string{"check", "-print-default"}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "default.json")
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := dispatch(context.Background(), env{stdout: &out, stderr: &errb}, []string{"check", "-config", p}); err != nil {
		t.Fatalf("check of the printed default: %v", err)
	}
	if !strings.Contains(out.String(), p+": OK") {
		t.Errorf("check output: %q", out.String())
	}
	// The default shipped for the image is the same configuration.
	c, err := config.Load("config/testdata/default.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestCheckNamesFieldAndProblem(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(p, []byte(`{"trigger": {"before": "0s", "repeat": "sometimes"}}`), 0o644)
	var out, errb bytes.Buffer
	err := dispatch(context.Background(), env{stdout: &out, stderr: &errb}, []string{"check", "-config", p})
	if err == nil {
		t.Fatal("check accepted a bad config")
	}
	for _, want := range []string{p, "trigger.before: must be positive", `trigger.repeat: "sometimes" is not one of`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("check error lacks %q:\n%v", want, err)
		}
	}
}

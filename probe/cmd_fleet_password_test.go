package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/probe/internal/devicepw"
	"github.com/presscap/presscap/probe/internal/fleet"
	"github.com/presscap/presscap/probe/internal/fleet/fleettest"
)

// TestFleetPassword: `probe fleet password` prints a probe's password from
// its report, in clear or opened with the key `probe fleet password-key`
// made; a sealed one without the key, or with another, is an error.
func TestFleetPassword(t *testing.T) {
	dir := t.TempDir()
	status := filepath.Join(dir, "fleet", "status")
	keyFile := filepath.Join(dir, "provider.key")
	run := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := dispatch(context.Background(), env{stdout: &out, stderr: &errb}, append([]string{"fleet"}, args...))
		return out.String(), err
	}
	pub, err := run("password-key", keyFile)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := devicepw.Seal("SEALED-PW", strings.TrimSpace(pub))
	if err != nil {
		t.Fatalf("the printed recipient %q: %v", pub, err)
	}
	fleettest.Write(t, status, fleet.Report{ID: "10000000aaaaaaaa", DevicePassword: "CLEAR-PW"}, time.Now())
	fleettest.Write(t, status, fleet.Report{ID: "10000000bbbbbbbb", DevicePasswordSealed: sealed}, time.Now())

	if out, err := run("password", dir, "10000000aaaaaaaa"); err != nil || out != "CLEAR-PW\n" {
		t.Errorf("clear: %q, %v", out, err)
	}
	if out, err := run("password", "-password-key", keyFile, status, "10000000bbbbbbbb"); err != nil || out != "SEALED-PW\n" {
		t.Errorf("sealed: %q, %v", out, err)
	}
	if _, err := run("password", dir, "10000000bbbbbbbb"); err == nil || !strings.Contains(err.Error(), "-password-key") {
		t.Errorf("sealed without the key: %v", err)
	}
	other := filepath.Join(dir, "other.key")
	if _, err := run("password-key", other); err != nil {
		t.Fatal(err)
	}
	if out, err := run("password", "-password-key", other, dir, "10000000bbbbbbbb"); err == nil {
		t.Errorf("another key opened it: %q", out)
	}
	if _, err := run("password-key", keyFile); err == nil {
		t.Error("password-key replaced an existing key")
	}
	if _, err := run("password", dir, "../10000000aaaaaaaa"); err == nil {
		t.Error("an id with a path was taken")
	}
}

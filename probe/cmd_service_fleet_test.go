package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/fleet"
)

// TestSetupFleet: the service names its files presscap-<id8>, or the
// configured hostname, with the label the uploader saved; on a gokrazy
// image it creates the device password in /perm without logging it; a
// machine without an id keeps the configured name.
func TestSetupFleet(t *testing.T) {
	root := t.TempDir()
	for p, content := range map[string]string{
		"proc/device-tree/serial-number": "10000000a1b2c3d4\x00",
		"etc/gokr-pw.txt":                "image-password\n",
		"state/fleet-label.json":         `{"id": "10000000a1b2c3d4", "label": "T-4711"}`,
		"perm/.keep":                     "",
	} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := config.DefaultConfig()
	c.Storage.StateDir = filepath.Join(root, "state")
	var log bytes.Buffer
	logf := func(format string, args ...any) { fmt.Fprintf(&log, format+"\n", args...) }

	f := setupFleet(c, root, logf)
	if f.id.Value != "10000000a1b2c3d4" || f.host != "presscap-a1b2c3d4-T-4711" {
		t.Fatalf("id %v, host %q", f.id, f.host)
	}
	b, err := os.ReadFile(filepath.Join(root, "perm", "gokr-pw.txt"))
	if err != nil || strings.TrimSpace(string(b)) != f.password || len(f.password) != 26 {
		t.Fatalf("device password %q, file %q, %v", f.password, b, err)
	}
	if strings.Contains(log.String(), f.password) {
		t.Fatalf("the device password is in the log:\n%s", log.String())
	}

	c.Hostname = "lab-7"
	if f := setupFleet(c, root, logf); f.host != "lab-7-T-4711" || f.password != strings.TrimSpace(string(b)) {
		t.Errorf("configured hostname: host %q, password kept %v", f.host, f.password == strings.TrimSpace(string(b)))
	}
	os.Remove(filepath.Join(root, "proc/device-tree/serial-number"))
	if f := setupFleet(c, root, logf); f.id.Value != "" || f.host != "lab-7" {
		t.Errorf("no id: %v, host %q", f.id, f.host)
	}
	// No /etc/gokr-pw.txt (not gokrazy: a developer's machine): /perm is
	// not touched.
	other := t.TempDir()
	if f := setupFleet(c, other, logf); f.password != "" {
		t.Error("a password outside gokrazy")
	}
	if _, err := os.Stat(filepath.Join(other, "perm")); err == nil {
		t.Error("created perm/ on a machine without gokrazy's password file")
	}
}

// TestRecentLog: the log's warnings and errors reach the report, the rest
// only the log.
func TestRecentLog(t *testing.T) {
	var out bytes.Buffer
	msgs := &fleet.Recent{}
	l := &recentLog{w: &out, msgs: msgs}
	fmt.Fprint(l, "presscap: recording on eth0\nupload: failed after 0 of 2 files: ssh: ")
	fmt.Fprint(l, "handshake failed\nconfiguration warning: storage.retry: 10ms\n")
	got := msgs.List()
	if len(got) != 2 || got[0].Level != "error" || !strings.HasSuffix(got[0].Text, "handshake failed") || got[1].Level != "warning" {
		t.Fatalf("kept %+v", got)
	}
	if !strings.Contains(out.String(), "recording on eth0") {
		t.Fatalf("the log lost a line: %q", out.String())
	}
}

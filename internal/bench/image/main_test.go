package main

import "testing"

func TestParseInfo(t *testing.T) {
	info := "build 2026-11-27T09:30:15Z\nsignature 2e1d1a5b\nroot 30822400 bytes\nboot 72071168 bytes used\npartition 1: ...\nfile /bootcode.bin 52476 bytes\n"
	root, boot, err := parseInfo(info)
	if err != nil || root != 30822400 || boot != 72071168 {
		t.Errorf("parseInfo = %d, %d, %v; want 30822400, 72071168", root, boot, err)
	}
	if _, _, err := parseInfo("root 1 bytes\n"); err == nil {
		t.Error("info without a boot line was accepted")
	}
}

func TestKeep(t *testing.T) {
	for line, want := range map[string]bool{
		"    systemtest_test.go:88: bench: boot to web UI 13.0 s":   true,
		"--- PASS: TestBootAndUpdate (120.1s)":                      true,
		"ok  	github.com/presscap/presscap/image/systemtest	250.3s": true,
		"FAIL	github.com/presscap/presscap/image/systemtest	30.0s":  true,
		"=== RUN   TestBootAndUpdate":                               false,
		"    systemtest_test.go:40: console: gokrazy booting":       false,
	} {
		if keep(line) != want {
			t.Errorf("keep(%q) = %v, want %v", line, !want, want)
		}
	}
}

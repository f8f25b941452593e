package upload

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestListQueueOrder(t *testing.T) {
	dir := t.TempDir()
	const a, b = "p_20261127T020000.000Z", "p_20261127T030000.000Z-unsynced"
	for _, n := range []string{b + "_manifest.json", a + "_z.pcap", a + "_manifest.json", a + "_a.pcap",
		".hidden.pcap", a + "_x.pcap.tmp", a + "_y.pcap.part", b + "_m.pcapng"} {
		os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644)
	}
	os.Mkdir(filepath.Join(dir, "sent"), 0o755)
	os.Symlink(a+"_a.pcap", filepath.Join(dir, a+"_link.pcap"))
	files, err := ListQueue(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, f.Name)
		if f.Size != int64(len(f.Name)) {
			t.Errorf("%s: size %d", f.Name, f.Size)
		}
	}
	if want := []string{a + "_a.pcap", a + "_z.pcap", b + "_m.pcapng", a + "_manifest.json", b + "_manifest.json"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	if files, err := ListQueue(filepath.Join(dir, "missing")); err != nil || len(files) != 0 {
		t.Fatalf("missing dir: %v %v", files, err)
	}
}

// TestListQueueOnlyProducedNames: the queue is on the customer's disk;
// only names the export gives are sent, anything else stays where it is.
func TestListQueueOnlyProducedNames(t *testing.T) {
	dir := t.TempDir()
	ours := []string{"probe_20261127T020000.000Z_all.pcap", "probe_20261127T020000.000Z_manifest.json"}
	theirs := []string{"holiday.jpg", "a.pcap", "probe_20261127T020000Z_all.pcap", "probe_20261127T020000.000Z_all.txt",
		"probe_20261127T020000.000Z_.pcap", "x_manifest.json", "gokr-pw.txt"}
	for _, n := range append(append([]string{}, ours...), theirs...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, foreign, err := scanQueue(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, f.Name)
	}
	if !reflect.DeepEqual(got, ours) {
		t.Errorf("queued %v, want %v", got, ours)
	}
	sort.Strings(foreign)
	want := append([]string{}, theirs...)
	sort.Strings(want)
	if !reflect.DeepEqual(foreign, want) {
		t.Errorf("left out %v, want %v", foreign, want)
	}
	// A queue directory that is a symlink is not followed.
	link := filepath.Join(t.TempDir(), "upload-queue")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if files, err := ListQueue(link); err == nil || len(files) != 0 || !strings.Contains(err.Error(), "not followed") {
		t.Errorf("symlinked queue: %v %v, want an error saying it is not followed", files, err)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte{1}, 64<<10)
	// 512 kbit/s = 64 kB/s: 64 KiB need about one second.
	start := time.Now()
	r := newRateLimitedReader(context.Background(), bytes.NewReader(data), 512)
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("limited read: %v", err)
	}
	if d := time.Since(start); d < 600*time.Millisecond {
		t.Fatalf("64 KiB at 512 kbit/s took %v, the limit was not applied", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r = newRateLimitedReader(ctx, bytes.NewReader(data), 8)
	r.Read(make([]byte, 1<<10))
	if _, err := r.Read(make([]byte, 1<<10)); err != context.Canceled {
		t.Fatalf("cancelled limited read: %v", err)
	}
}

func TestHostKeyPinParse(t *testing.T) {
	line := "sftp.example.net,10.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOvLRgktC3q2zlaqrQM+us3AQNUF5+lpiscwzIJO+ytB"
	p, err := parseHostKeyPin(line)
	if err != nil || p.key == nil || !reflect.DeepEqual(p.algorithms(), []string{"ssh-ed25519"}) {
		t.Fatalf("known_hosts line: %+v %v", p, err)
	}
	q, err := parseHostKeyPin(p.fingerprint)
	if err != nil || q.key != nil || q.fingerprint != p.fingerprint {
		t.Fatalf("fingerprint: %+v %v", q, err)
	}
	// ssh-keygen -lf prints no padding; a padded one is accepted too.
	if _, err := parseHostKeyPin(p.fingerprint + "="); err != nil {
		t.Fatal(err)
	}
}

func TestKeyCreatedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", KeyFileName)
	_, a, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	_, b, err := LoadOrCreateKey(path)
	if err != nil || a != b {
		t.Fatalf("second load gave another key: %q %q %v", a, b, err)
	}
	pub, _ := os.ReadFile(path + ".pub")
	if string(bytes.TrimSpace(pub)) != a {
		t.Fatalf(".pub %q differs from %q", pub, a)
	}
	os.WriteFile(path, []byte("garbage"), 0o600)
	if _, _, err := LoadOrCreateKey(path); err == nil {
		t.Fatal("a corrupt key was accepted (or silently replaced)")
	}
}

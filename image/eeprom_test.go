package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presscap/presscap/image/internal/eeprom"
	"github.com/presscap/presscap/image/internal/fat"
	"github.com/presscap/presscap/internal/testing/testtool"
)

var eepromFiles = []string{"pieeprom.upd", "pieeprom.sig", "vl805.bin", "vl805.sig", "recovery.bin"}

// newestInModule returns the module's files gok would ship, found
// independently of image/eeprom: the lexically last pieeprom-*.bin and
// vl805-*.bin, and recovery.bin.
func newestInModule(t *testing.T) map[string][]byte {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-json", "github.com/gokrazy/rpi-eeprom").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/gokrazy/rpi-eeprom: %v", err)
	}
	var m struct{ Dir string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		t.Fatalf("go list -m -json: %v %q", err, out)
	}
	last := func(glob string) []byte {
		all, _ := filepath.Glob(filepath.Join(m.Dir, glob))
		if len(all) == 0 {
			t.Fatalf("the module has no %s", glob)
		}
		sort.Strings(all)
		b, err := os.ReadFile(all[len(all)-1])
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rec, err := os.ReadFile(filepath.Join(m.Dir, "recovery.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{"pieeprom.upd": last("pieeprom-*.bin"), "vl805.bin": last("vl805-*.bin"), "recovery.bin": rec}
}

// checkEEPROM checks the Pi image's EEPROM files through our reader, the
// gokrazy lookup and mtools, against the module's newest files.
func checkEEPROM(t *testing.T, fs *fat.FS, part string) {
	t.Helper()
	want := newestInModule(t)
	if len(want["pieeprom.upd"]) != 512<<10 {
		t.Errorf("the newest pieeprom is %d bytes, want 512 KiB", len(want["pieeprom.upd"]))
	}
	mtype := testtool.Path(t, "mtype", "mtools")
	read := map[string][]byte{}
	for _, name := range eepromFiles {
		got, err := fs.ReadFile(name) // fails unless the file is one contiguous run
		if err != nil {
			t.Errorf("boot: %v", err)
			continue
		}
		read[name] = got
		if o1, n1, err := fs.Extents(name); err != nil {
			t.Error(err)
		} else if o2, n2, err := fs.GokrazyExtents("/" + name); err != nil || o1 != o2 || n1 != n2 {
			t.Errorf("gokrazy's lookup of %s: %d,%d,%v; want %d,%d", name, o2, n2, err, o1, n1)
		}
		cmd := exec.Command(mtype, "-i", part, "::/"+name)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		viaMtools, err := cmd.Output()
		if err != nil || !bytes.Equal(viaMtools, got) {
			t.Errorf("mtype %s: %d bytes (%v), our reader %d", name, len(viaMtools), err, len(got))
		}
	}
	for _, name := range []string{"pieeprom.upd", "vl805.bin", "recovery.bin"} {
		if !bytes.Equal(read[name], want[name]) {
			t.Errorf("%s: %d bytes differ from the module's newest (%d bytes)", name, len(read[name]), len(want[name]))
		}
	}
	for sig, of := range map[string]string{"pieeprom.sig": "pieeprom.upd", "vl805.sig": "vl805.bin"} {
		h := sha256.Sum256(read[of])
		if w := hex.EncodeToString(h[:]) + "\n"; string(read[sig]) != w {
			t.Errorf("%s = %q, want the SHA-256 of %s in the FAT, %q", sig, read[sig], of, w)
		}
	}
	if _, err := fs.Stat("RECOVERY.000"); err == nil {
		t.Error("a fresh image carries RECOVERY.000: a Pi 4 would not flash")
	}
}

func checkNoEEPROM(t *testing.T, fs *fat.FS) {
	t.Helper()
	for _, name := range append(eepromFiles, "RECOVERY.000") {
		if _, err := fs.Stat(name); err == nil {
			t.Errorf("boot FAT holds %s although EEPROMPackage is \"\"", name)
		}
	}
}

// fakeDevice answers the update protocol for the image tool's update
// command, reporting eeprom as its last flashed EEPROM.
type fakeDevice struct {
	mu     sync.Mutex
	pw     string
	build  string
	next   string
	eeprom *eeprom.Version
	boot   []byte
	// plainPuts and tlsPuts count the PUTs by transport.
	plainPuts, tlsPuts int
	// pwAfterReboot, if set, is the password from the reboot on (the
	// per-device one the probe made on its first start).
	pwAfterReboot string
}

func (d *fakeDevice) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u, pw, ok := r.BasicAuth(); !ok || u != "gokrazy" || pw != d.pw {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case r.URL.Path == "/update/features":
		io.WriteString(w, "partuuid,gpt,")
	case r.Method == http.MethodPut:
		if r.TLS != nil {
			d.tlsPuts++
		} else {
			d.plainPuts++
		}
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/update/boot" {
			d.boot = b
		}
		h := sha256.Sum256(b)
		io.WriteString(w, hex.EncodeToString(h[:]))
	case r.URL.Path == "/reboot":
		d.build = d.next
		if d.pwAfterReboot != "" {
			d.pw = d.pwAfterReboot
		}
	case r.URL.Path == "/update/switch":
	case r.URL.Path == "/":
		json.NewEncoder(w).Encode(map[string]any{"BuildTimestamp": d.build, "Hostname": "presscap", "EEPROM": d.eeprom})
	default:
		http.Error(w, "bad request", http.StatusBadRequest)
	}
}

// checkUpdateEEPROM pushes the built Pi image with the update command to
// devices that report an older, no, and the image's own EEPROM.
func checkUpdateEEPROM(t *testing.T, b built, fs *fat.FS) {
	t.Helper()
	pie, _ := fs.ReadFile("pieeprom.sig")
	vl, _ := fs.ReadFile("vl805.sig")
	same := &eeprom.Version{PieepromSHA256: strings.TrimSpace(string(pie)), VL805SHA256: strings.TrimSpace(string(vl)), FirmwareDate: "2026-05-17"}
	older := &eeprom.Version{PieepromSHA256: eeprom.Hash([]byte("older")), VL805SHA256: same.VL805SHA256, FirmwareDate: "2025-05-08"}
	rec, _ := fs.ReadFile("recovery.bin")
	for _, tt := range []struct {
		name     string
		dev      *eeprom.Version
		recovery string
		log      string
	}{
		{"older", older, "recovery.bin", "EEPROM will be updated from pieeprom " + older.PieepromSHA256[:12]},
		{"null", nil, "recovery.bin", "EEPROM will be updated from an unknown version"},
		{"same", same, "RECOVERY.000", "EEPROM already up to date"},
	} {
		d := &fakeDevice{pw: b.password, build: "old", next: b.ts.Format("2006-01-02T15:04:05Z07:00"), eeprom: tt.dev}
		srv := httptest.NewUnstartedServer(d)
		// An instance with Update.UseTLS: the device serves the
		// image's certificate, and the update speaks HTTPS to it.
		if web, err := tls.LoadX509KeyPair(filepath.Join(b.instance, "state", "web-cert.pem"), filepath.Join(b.instance, "state", "web-key.pem")); err == nil {
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{web}}
			srv.StartTLS()
		} else {
			srv.Start()
		}
		var out bytes.Buffer
		err := run(context.Background(), []string{"update", "-instance", b.instance, "-image", b.img, "-target", srv.URL, "-wait", "10s"}, &out, io.Discard)
		srv.Close()
		if err != nil {
			t.Fatalf("%s: update: %v\n%s", tt.name, err, out.String())
		}
		if srv.TLS != nil && !strings.HasPrefix(srv.URL, "https://") {
			t.Errorf("%s: the TLS device was reached at %s", tt.name, srv.URL)
		}
		if _, err := os.Stat(filepath.Join(b.instance, "state", "web-cert-pin.txt")); srv.TLS != nil && err != nil {
			t.Errorf("%s: no certificate pin after an update over HTTPS: %v", tt.name, err)
		}
		if !strings.Contains(out.String(), tt.log) || !strings.Contains(out.String(), "boot FAT gets "+tt.recovery) {
			t.Errorf("%s: update output lacks %q and %s:\n%s", tt.name, tt.log, tt.recovery, out.String())
		}
		pushed, err := fat.Open(bytes.NewReader(append(d.boot, make([]byte, 100<<20-len(d.boot))...)))
		if err != nil {
			t.Fatalf("%s: pushed boot FAT: %v", tt.name, err)
		}
		if got, err := pushed.ReadFile(tt.recovery); err != nil || !bytes.Equal(got, rec) {
			t.Errorf("%s: pushed %s: %d bytes, %v", tt.name, tt.recovery, len(got), err)
		}
		other := map[string]string{"recovery.bin": "RECOVERY.000", "RECOVERY.000": "recovery.bin"}[tt.recovery]
		if _, err := pushed.Stat(other); err == nil {
			t.Errorf("%s: pushed boot FAT also holds %s", tt.name, other)
		}
		for _, name := range []string{"pieeprom.upd", "pieeprom.sig", "vl805.bin", "vl805.sig", "cmdline.txt", "vmlinuz"} {
			a, _ := fs.ReadFile(name)
			if got, err := pushed.ReadFile(name); err != nil || !bytes.Equal(got, a) {
				t.Errorf("%s: pushed %s differs from the image's (%v)", tt.name, name, err)
			}
		}
	}
}

// checkUpdateFromHTTP updates a device that still runs an image without
// TLS: the push goes over plain HTTP (-from-http), the new build is awaited
// over HTTPS and its certificate pinned.
func checkUpdateFromHTTP(t *testing.T, b built) {
	t.Helper()
	web, err := tls.LoadX509KeyPair(filepath.Join(b.instance, "state", "web-cert.pem"), filepath.Join(b.instance, "state", "web-key.pem"))
	if err != nil {
		t.Fatalf("the instance has no web certificate: %v", err)
	}
	pin := filepath.Join(b.instance, "state", "web-cert-pin.txt")
	os.Remove(pin)
	d := &fakeDevice{pw: b.password, build: "old", next: b.ts.Format(time.RFC3339)}
	plain := httptest.NewServer(d)
	defer plain.Close()
	secure := httptest.NewUnstartedServer(d)
	secure.TLS = &tls.Config{Certificates: []tls.Certificate{web}}
	secure.StartTLS()
	defer secure.Close()

	var out bytes.Buffer
	err = run(context.Background(), []string{"update", "-instance", b.instance, "-image", b.img, "-target", plain.URL, "-wait", "10s"}, &out, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-from-http") {
		t.Errorf("plain -target for a TLS instance: %v", err)
	}
	out.Reset()
	err = run(context.Background(), []string{"update", "-instance", b.instance, "-image", b.img, "-from-http", plain.URL, "-target", secure.URL, "-wait", "10s"}, &out, io.Discard)
	if err != nil {
		t.Fatalf("update -from-http: %v\n%s", err, out.String())
	}
	if d.plainPuts < 2 || d.tlsPuts != 0 {
		t.Errorf("PUTs: %d over HTTP, %d over HTTPS; want all over HTTP", d.plainPuts, d.tlsPuts)
	}
	for _, w := range []string{"in clear this once", "waiting for build " + d.next + " at " + secure.URL, "pinned the device's certificate"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("update -from-http output lacks %q:\n%s", w, out.String())
		}
	}
	if _, err := os.Stat(pin); err != nil {
		t.Errorf("no pin after the new build answered over HTTPS: %v", err)
	}
}

// checkUpdatePasswordFile updates devices that use their per-device
// password: without -password-file the wait after the reboot is refused and
// the error says where the password is and which flag takes it; with it the
// update goes through.
func checkUpdatePasswordFile(t *testing.T, b built) {
	t.Helper()
	web, err := tls.LoadX509KeyPair(filepath.Join(b.instance, "state", "web-cert.pem"), filepath.Join(b.instance, "state", "web-key.pem"))
	if err != nil {
		t.Fatalf("the instance has no web certificate: %v", err)
	}
	start := func(d *fakeDevice) *httptest.Server {
		srv := httptest.NewUnstartedServer(d)
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{web}}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv
	}
	const devicePW = "per-device-password"
	first := &fakeDevice{pw: b.password, pwAfterReboot: devicePW, build: "old", next: b.ts.Format(time.RFC3339)}
	srv := start(first)
	err = run(context.Background(), []string{"update", "-instance", b.instance, "-image", b.img, "-target", srv.URL, "-wait", "3s"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "-password-file") || !strings.Contains(err.Error(), "device_password") {
		t.Errorf("update of a device that switches to its own password: %v", err)
	}
	pwFile := filepath.Join(t.TempDir(), "device-pw.txt")
	if err := os.WriteFile(pwFile, []byte(devicePW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	second := &fakeDevice{pw: devicePW, build: "old", next: b.ts.Format(time.RFC3339)}
	srv = start(second)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"update", "-instance", b.instance, "-image", b.img, "-target", srv.URL, "-password-file", pwFile, "-wait", "10s"}, &out, io.Discard); err != nil {
		t.Errorf("update with -password-file: %v\n%s", err, out.String())
	}
	if second.tlsPuts < 2 {
		t.Errorf("update with -password-file pushed %d parts", second.tlsPuts)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte(" \n"), 0o600)
	if err := run(context.Background(), []string{"update", "-instance", b.instance, "-image", b.img, "-target", srv.URL, "-password-file", empty}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty -password-file: %v", err)
	}
}

func TestBadEEPROMPackageFailsTheBuild(t *testing.T) {
	for _, tt := range []struct{ pkg, want string }{
		{"github.com/gokrazy/firmware", "no pieeprom-*.bin"}, // a real module without EEPROM files
		{"example.com/no-such-eeprom", "example.com/no-such-eeprom"},
	} {
		inst := copyInstance(t, "presscap")
		p := filepath.Join(inst, "config.json")
		c, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(c, &m); err != nil {
			t.Fatal(err)
		}
		m["EEPROMPackage"] = tt.pkg
		c, _ = json.Marshal(m)
		if err := os.WriteFile(p, c, 0o644); err != nil {
			t.Fatal(err)
		}
		img := filepath.Join(t.TempDir(), "bad.img")
		var stdout bytes.Buffer
		err = run(context.Background(), []string{"build", "-instance", inst, "-o", img, "-workdir", workDir(t, "badeeprom")}, &stdout, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "EEPROMPackage") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("EEPROMPackage %q: err = %v, want it to name the field and %q", tt.pkg, err, tt.want)
		}
		if strings.Contains(stdout.String(), "go build") {
			t.Errorf("EEPROMPackage %q: programs were compiled before the EEPROM module was checked", tt.pkg)
		}
		if _, err := os.Stat(img); err == nil {
			t.Errorf("EEPROMPackage %q: an image was written", tt.pkg)
		}
	}
}

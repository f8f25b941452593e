//go:build systemtest

package systemtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/testtool"
)

// vmReport is what the system test reads of a health report (the
// probe's fleet package is internal to probe/).
type vmReport struct {
	ID             string `json:"id"`
	IDSource       string `json:"id_source"`
	Hostname       string `json:"hostname"`
	DevicePassword string `json:"device_password"`
	FleetConfig    *struct {
		Source string   `json:"source"`
		Hash   string   `json:"hash"`
		State  string   `json:"state"`
		Errors []string `json:"errors"`
	} `json:"fleet_config"`
}

// checkReport: the VM's health report reached the host's sshd as
// fleet/status/<id>.json, holding that id, its presscap-<id8> host name
// and the device password pw on the VM's /perm (pw "": one the test does
// not know yet, which must not be empty). pressAndCheck moves what came
// before the press (the boot report too) to e.seen; the report after the
// press's upload lands in e.remote.
func (e *e2e) checkReport(t *testing.T, pw string) vmReport {
	t.Helper()
	var found []string
	deadline := time.Now().Add(2 * time.Minute) // a report follows each upload within the reporter's 30 s tick
	for time.Now().Before(deadline) {
		found, _ = filepath.Glob(filepath.Join(e.remote, "fleet", "status", "*.json"))
		if len(found) > 0 {
			break
		}
		time.Sleep(time.Second)
	}
	if len(found) != 1 {
		t.Fatalf("health reports on the SFTP server after the upload: %v, want one\nsshd: %s", found, tail(e.srv.Log(), 2000))
	}
	b, err := os.ReadFile(found[0])
	if err != nil {
		t.Fatal(err)
	}
	var r vmReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", found[0], err)
	}
	id := strings.TrimSuffix(filepath.Base(found[0]), ".json")
	if r.ID != id || len(id) < 8 || r.Hostname != "presscap-"+id[len(id)-8:] || r.IDSource == "" {
		t.Errorf("report %s: id %q (%s), host %q", filepath.Base(found[0]), r.ID, r.IDSource, r.Hostname)
	}
	if (pw != "" && r.DevicePassword != pw) || r.DevicePassword == "" {
		t.Errorf("report %s: the device password is not the one on the VM's /perm", filepath.Base(found[0]))
	}
	t.Logf("the VM's health report: id %s (%s), host %s", r.ID, r.IDSource, r.Hostname)
	return r
}

// fleetConfig is the configuration the system test places on the server:
// one export, of the frames to UDP port 7777 (fleetExports), instead of
// the image's two (imageExports).
const fleetConfig = `{"exports": [{"name": "port7777", "filter": "udp dst port 7777"}]}` + "\n"

var fleetExports = exportsWant{"port7777": 7777}

// allowPasswordReboot lets inst's probe make its reboot for the device
// password at once: the VM's clock never syncs (the guest reaches no NTP
// server), so the default release.window would keep it waiting, and no
// quiet time after a press.
func allowPasswordReboot(t *testing.T, inst string) {
	t.Helper()
	editProbeConfig(t, inst, func(c map[string]any) {
		c["release"] = map[string]any{"quiet_after_press": "0s", "window": "00:00-00:00"}
	})
}

// checkFleetFirstBoot follows the first boot of a fresh image (the
// image's password imagePW in gokrazy, build build) whose probe uploads
// to e, and returns the probe's id and the password it made:
//   - the probe makes its own password at start (its log says so, and no
//     more);
//   - fleet/config/<id>.json placed on the server is read at the report
//     after the first press's upload, the service restarts with it, and
//     the second press saves its one export instead of the image's two;
//     the report after that press says the file is applied, with its
//     hash;
//   - the reports hold the device password, and once one reached the
//     server the probe reboots: gokrazy then takes the device password
//     and refuses the image's.
func (e *e2e) checkFleetFirstBoot(t *testing.T, v *vm, gen *generator, statusPort int, imagePW, build string) (id, devicePW string) {
	t.Helper()
	st, _ := waitRecording(t, v, statusPort, imagePW, 3*time.Minute)
	waitLog(t, v, imagePW, time.Minute, "fleet: per-device password created in /perm/gokr-pw.txt")
	if st.ID == "" {
		t.Fatalf("the status page names no probe id: %+v", st)
	}
	id = st.ID
	cfg := filepath.Join(e.remote, "fleet", "config", id+".json")
	if err := os.MkdirAll(filepath.Dir(cfg), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(fleetConfig), 0o644); err != nil {
		t.Fatal(err)
	}

	e.pressAndCheck(t, v, gen, statusPort, imagePW)
	r := e.checkReport(t, "")
	devicePW = r.DevicePassword
	if devicePW == imagePW {
		t.Fatal("the report's device password is the image's")
	}
	step := time.Now()
	restarted := waitRestarted(t, v, statusPort, st.Started, 2*time.Minute)
	t.Logf("bench: report to the service running the server's configuration %.1f s", time.Since(step).Seconds())
	if restarted.ID != id {
		t.Errorf("after the restart the probe's id is %q, was %q", restarted.ID, id)
	}

	e.pressAndCheckExports(t, v, gen, statusPort, imagePW, fleetExports)
	r = e.checkReport(t, devicePW)
	sum := sha256.Sum256([]byte(fleetConfig))
	if fc := r.FleetConfig; fc == nil || fc.State != "applied" || fc.Source != "fleet/config/"+id+".json" || fc.Hash != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("the report after the press says of the server's configuration %+v; want fleet/config/%s.json applied with its hash", fc, id)
	}

	step = time.Now()
	v.waitUp(t, devicePW, build, 4*time.Minute)
	t.Logf("bench: report to the device password in force (the probe's reboot) %.1f s", time.Since(step).Seconds())
	if n := strings.Count(v.serialLog(t), "Kernel command line:"); n != 2 {
		t.Errorf("%d boots on the serial console, want 2 (the first and the password's reboot)", n)
	}
	checkImagePasswordRefused(t, v, imagePW)
	return id, devicePW
}

// waitRestarted waits until the probe's service started after was.
func waitRestarted(t *testing.T, v *vm, statusPort int, was time.Time, timeout time.Duration) probeStatus {
	t.Helper()
	start := time.Now()
	var last probeStatus
	for time.Since(start) < timeout {
		s, err := getProbeStatus(statusPort, "")
		if err == nil && s.Started.After(was) && s.Ring != nil {
			return s
		}
		last = s
		time.Sleep(time.Second)
	}
	t.Fatalf("the probe's service did not start again within %s (status %+v)\nserial:\n%s", timeout, last, tail(v.serialLog(t), 4000))
	return probeStatus{}
}

// checkImagePasswordRefused: the web UI refuses the image's password and
// a wrong one (HTTP 401).
func checkImagePasswordRefused(t *testing.T, v *vm, imagePW string) {
	t.Helper()
	for name, p := range map[string]string{"a wrong password": "wrong", "the image's password": imagePW} {
		if _, err := v.target(p).GetStatus(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("GET / with %s: %v, want 401", name, err)
		}
	}
}

// fleetPasswordFile runs the provider's `probe fleet password` on the
// server's directory, as docs/provider/fleet.md tells the provider to
// before `make update PASSWORD_FILE=`, and returns the file it wrote.
func (e *e2e) fleetPasswordFile(t *testing.T, dir, id string) string {
	t.Helper()
	bin := filepath.Join(dir, "probe")
	build := exec.Command("go", "build", "-o", bin, "./probe")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./probe: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "fleet", "password", e.remote, id).Output()
	if err != nil {
		t.Fatalf("probe fleet password %s %s: %v", e.remote, id, err)
	}
	f := filepath.Join(dir, "device-pw.txt")
	if err := os.WriteFile(f, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// checkPermPassword: perm (a copy of the VM's /perm) holds pw, the
// password the probe made on its first boot, mode 0600.
func checkPermPassword(t *testing.T, perm, pw string) {
	t.Helper()
	debugfs := testtool.Path(t, "debugfs", "e2fsprogs")
	run := func(req string) string {
		cmd := exec.Command(debugfs, "-R", req, perm)
		cmd.Env = append(os.Environ(), "DEBUGFS_PAGER=__none__", "PAGER=__none__")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("debugfs %s: %v\n%s", req, err, out)
		}
		return string(out)
	}
	if got := strings.TrimSpace(run("cat /gokr-pw.txt")); got != pw {
		t.Errorf("/perm/gokr-pw.txt after the update holds %d characters, not the password of the reports", len(got))
	}
	if st := run("stat /gokr-pw.txt"); !regexp.MustCompile(`Mode:\s+0600\b`).MatchString(st) {
		t.Errorf("/perm/gokr-pw.txt is not mode 0600:\n%s", st)
	}
}

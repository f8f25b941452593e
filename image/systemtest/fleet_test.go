//go:build systemtest

package systemtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// vmReport is what the system test reads of a health report (the
// probe's fleet package is internal to probe/).
type vmReport struct {
	ID             string `json:"id"`
	IDSource       string `json:"id_source"`
	Hostname       string `json:"hostname"`
	DevicePassword string `json:"device_password"`
}

// checkReport: the VM's health report reached the host's sshd as
// fleet/status/<id>.json, holding that id, its presscap-<id8> host name
// and the device password on the VM's /perm. pressAndCheck moves what
// came before the press (the boot report too) to e.seen; the report after
// the press's upload lands in e.remote.
func (e *e2e) checkReport(t *testing.T, pw string) {
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
	if r.DevicePassword != pw {
		t.Errorf("report %s: the device password is not the one on the VM's /perm", filepath.Base(found[0]))
	}
	t.Logf("the VM's health report: id %s (%s), host %s", r.ID, r.IDSource, r.Hostname)
}

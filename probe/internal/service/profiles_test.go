package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/internal/export"
	"github.com/presscap/presscap/probe/internal/status"
	"github.com/presscap/presscap/probe/internal/trigger"
	"github.com/presscap/presscap/probe/internal/window"
)

// TestProfilesPressTheirOwnWindows: with trigger.profiles, each button's
// key (input_event bytes through a FIFO) opens its own window with its
// own before, after and exports, named after the profile in the file
// names, the manifest and the pending record; a key in no profile presses
// the first; the acknowledgement counts the profile's position.
func TestProfilesPressTheirOwnWindows(t *testing.T) {
	netnstest.Require(t, "ip", "tcpdump", "capinfos", "tshark")
	pair := netnstest.NewPair(t)
	c := permConfig(t, pair.Host)
	c.Trigger.Profiles = []config.Profile{
		{Name: "phone", Label: "phone", Keys: []string{"KEY_PAGEUP"},
			Exports: []config.Export{{Name: "plain", Filter: "ether proto 0x88b5"}}},
		{Name: "internet", Keys: []string{"KEY_PAGEDOWN"}, After: config.Duration(2 * time.Second)},
	}
	c.Exports = []config.Export{{Name: "all"}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	oracle := netnstest.StartTcpdump(t, pair.Host, 262144, "")
	plain := netnstest.StartTcpdump(t, pair.Host, 262144, "ether proto 0x88b5")
	var recMu sync.Mutex
	records := map[int]string{}
	store := window.Store{Dir: filepath.Join(c.Storage.StateDir, window.PendingDirName)}
	r := startServiceWith(t, c, nil, func(o *Options) {
		o.OnPending = func(op string, id int, err error) {
			if b, rerr := os.ReadFile(store.Path(id)); op == "saved" && err == nil && rerr == nil {
				recMu.Lock()
				records[id] = string(b)
				recMu.Unlock()
			}
		}
	})
	pres := plugPresenter(t, c.Trigger.InputDir)
	testtool.WaitFor(t, "the presenter", 20*time.Second, func() bool { return len(r.svc.watcher.Devices()) == 1 })
	sender, frames, _ := warmUp(t, r, pair)
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			sender.Send(frames[i%len(frames)])
		}
	}()
	pPhone := pres.press(t, trigger.KeyPageUp)
	time.Sleep(200 * time.Millisecond)
	pNet := pres.press(t, trigger.KeyPageDown)
	time.Sleep(200 * time.Millisecond)
	pres.press(t, trigger.KeyDot) // in no profile: the first, phone's window
	byProfile := map[string]export.Manifest{}
	for range 2 {
		res := r.waitExport(t, 20*time.Second)
		if res.err != nil {
			t.Fatalf("export: %v\nlog:\n%s", res.err, r.log)
		}
		byProfile[res.man.Profile] = res.man
	}
	close(stop)
	<-sent

	phone, inet := byProfile["phone"], byProfile["internet"]
	if len(phone.Presses) != 2 || phone.Presses[1].Key != "KEY_DOT" || phone.Presses[1].Profile != "phone" {
		t.Fatalf("phone presses %+v, want PAGEUP and DOT", phone.Presses)
	}
	if !phone.From.Equal(pPhone.Add(-time.Second)) || !inet.From.Equal(pNet.Add(-time.Second)) || !inet.To.Equal(pNet.Add(2*time.Second)) || len(inet.Presses) != 1 {
		t.Fatalf("windows: phone %v..%v, internet %v..%v (%d presses); presses at %v, %v", phone.From, phone.To, inet.From, inet.To, len(inet.Presses), pPhone, pNet)
	}
	settled := func(ps []netnstest.Packet) bool {
		return len(ps) > 0 && ps[len(ps)-1].Time >= inet.To.UnixNano()
	}
	all, plainAll := oracle.Settle(t, settled), plain.Settle(t, settled)
	stamp := func(p time.Time) string { return p.UTC().Format("20060102T150405.000Z") }
	for _, tc := range []struct {
		m         export.Manifest
		prof, exp string
		press     time.Time
		oracle    []netnstest.Packet
	}{
		{phone, "phone", "plain", pPhone, plainAll},
		{inet, "internet", "all", pNet, all},
	} {
		base := "probetest_" + stamp(tc.press) + "_" + tc.prof
		if len(tc.m.Files) != 1 || tc.m.Files[0].Name != tc.exp || tc.m.Files[0].File != base+"_"+tc.exp+".pcap" {
			t.Fatalf("%s: files %+v, want one %s_%s.pcap", tc.prof, tc.m.Files, base, tc.exp)
		}
		dir := filepath.Join(c.Storage.PermDir, c.Storage.QueueDir)
		got := readPCAP(t, filepath.Join(dir, tc.m.Files[0].File))
		want := inWindow(tc.oracle, tc.m)
		if len(want) < 20 || len(got) != len(want) {
			t.Fatalf("%s: file has %d packets, tcpdump with its export's filter saw %d in the window", tc.prof, len(got), len(want))
		}
		for i := range got {
			if got[i].ts != want[i].Time || !bytes.Equal(got[i].data, want[i].Data) {
				t.Fatalf("%s: packet %d differs from tcpdump's", tc.prof, i)
			}
		}
		if page, err := os.ReadFile(filepath.Join(dir, base+"_report.html")); err != nil || !strings.Contains(string(page), "Capture report: "+base) {
			t.Errorf("%s: the report does not name the profile (%v)", tc.prof, err)
		}
		var mj export.Manifest
		b, err := os.ReadFile(filepath.Join(dir, base+"_manifest.json"))
		if err != nil || json.Unmarshal(b, &mj) != nil || mj.Profile != tc.prof || !strings.Contains(string(b), `"profile": "`+tc.prof+`"`) {
			t.Errorf("%s: manifest file %v: %s", tc.prof, err, b)
		}
	}
	recMu.Lock()
	for id, rec := range records {
		w, err := window.ParseRecord(store.Path(id), []byte(rec))
		if err != nil || w.Profile == "" {
			t.Errorf("pending record %d: profile not kept (%v): %s", id, err, rec)
		}
	}
	recMu.Unlock()
	if len(records) != 2 {
		t.Errorf("%d pending records seen, want 2", len(records))
	}
	r.fb.mu.Lock()
	if got := r.fb.acks; len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 1 {
		t.Errorf("acknowledgements %v, want [1 2 1] (the profile's position)", got)
	}
	r.fb.mu.Unlock()

	// The HTTP trigger and probe trigger name a profile; an unknown one is
	// refused without a press.
	if p, err := r.svc.Trigger("local", "internet"); err != nil || p.Profile != "internet" {
		t.Errorf("Trigger(internet) = %+v, %v", p, err)
	}
	if _, err := r.svc.Trigger("local", "tv"); !errors.Is(err, status.ErrNoProfile) {
		t.Errorf("Trigger(tv) = %v, want no such profile", err)
	}
}

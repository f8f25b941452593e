package updater

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presscap/presscap/image/internal/eeprom"
)

// device imitates gokrazy's update handlers (update.go): Basic auth, a
// digest of what was written (CRC-32 on request, else SHA-256), switch,
// reboot, and a status page whose build changes after the reboot.
type device struct {
	mu        sync.Mutex
	written   map[string][]byte
	calls     []string
	build     string
	nextBuild string
	features  string
	corrupt   string // path whose digest is computed over damaged bytes
	eeprom    *eeprom.Version
}

func (d *device) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pw, ok := r.BasicAuth()
	if !ok || user != "gokrazy" || pw != "secret" {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, r.Method+" "+r.URL.Path)
	switch {
	case r.URL.Path == "/update/features":
		io.WriteString(w, d.features)
	case strings.HasPrefix(r.URL.Path, "/update/") && r.Method == http.MethodPut:
		var h hash.Hash = sha256.New()
		if r.Header.Get("X-Gokrazy-Update-Hash") == "crc32" {
			h = crc32.NewIEEE()
		}
		b, _ := io.ReadAll(r.Body)
		d.written[r.URL.Path] = b
		if d.corrupt == r.URL.Path && len(b) > 0 {
			b = append([]byte{b[0] ^ 1}, b[1:]...)
		}
		h.Write(b)
		fmt.Fprintf(w, "%x", h.Sum(nil))
	case r.URL.Path == "/update/switch" && r.Method == http.MethodPost:
	case r.URL.Path == "/reboot" && r.Method == http.MethodPost:
		d.build = d.nextBuild
	case r.URL.Path == "/" && r.Method == http.MethodGet:
		json.NewEncoder(w).Encode(map[string]any{"BuildTimestamp": d.build, "Hostname": "presscap", "EEPROM": d.eeprom})
	default:
		http.Error(w, "bad request", http.StatusBadRequest)
	}
}

func newDevice(features string) (*device, *httptest.Server) {
	d := &device{written: map[string][]byte{}, build: "old", nextBuild: "new", features: features}
	return d, httptest.NewServer(d)
}

func payload() Payload {
	return Payload{
		Root:           bytes.NewReader(bytes.Repeat([]byte("root"), 100000)),
		Boot:           bytes.NewReader(bytes.Repeat([]byte("boot"), 5000)),
		BuildTimestamp: "new",
	}
}

func TestUpdateSequenceAndDigests(t *testing.T) {
	for _, features := range []string{"partuuid,updatehash,gpt,", "partuuid,gpt"} {
		d, srv := newDevice(features)
		tg := &Target{BaseURL: srv.URL, Password: "secret"}
		if err := tg.Update(context.Background(), payload(), 10*time.Second, nil); err != nil {
			t.Fatalf("%s: %v", features, err)
		}
		want := []string{"GET /update/features", "GET /", "PUT /update/root", "PUT /update/boot", "POST /update/switch", "POST /reboot", "GET /"}
		if got := strings.Join(d.calls, "|"); got != strings.Join(want, "|") {
			t.Errorf("%s: calls %v, want %v", features, d.calls, want)
		}
		if len(d.written["/update/root"]) != 400000 || len(d.written["/update/boot"]) != 20000 {
			t.Errorf("written root %d boot %d bytes", len(d.written["/update/root"]), len(d.written["/update/boot"]))
		}
		srv.Close()
	}
}

func TestUpdateRefusesDamage(t *testing.T) {
	d, srv := newDevice("partuuid,updatehash,gpt,")
	defer srv.Close()
	d.corrupt = "/update/boot"
	tg := &Target{BaseURL: srv.URL, Password: "secret"}
	err := tg.Update(context.Background(), payload(), 10*time.Second, nil)
	if err == nil || !strings.Contains(err.Error(), "PUT /update/boot") || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged boot transfer: err = %v", err)
	}
	for _, c := range d.calls {
		if c == "POST /update/switch" || c == "POST /reboot" {
			t.Errorf("%s after a damaged transfer", c)
		}
	}
}

func TestUpdateErrors(t *testing.T) {
	_, srv := newDevice("partuuid,updatehash,gpt,")
	defer srv.Close()
	bad := &Target{BaseURL: srv.URL, Password: "wrong"}
	if err := bad.Update(context.Background(), payload(), time.Second, nil); err == nil || !strings.Contains(err.Error(), "401") || !errors.Is(err, ErrUnauthorized) {
		t.Errorf("wrong password: %v", err)
	}

	_, old := newDevice("partuuid,updatehash,")
	defer old.Close()
	tg := &Target{BaseURL: old.URL, Password: "secret"}
	if err := tg.Update(context.Background(), payload(), time.Second, nil); err == nil || !strings.Contains(err.Error(), "gpt") {
		t.Errorf("device without GPT support: %v", err)
	}

	// A device that comes back with the old build: Wait gives up and says so.
	d, stuck := newDevice("partuuid,updatehash,gpt,")
	defer stuck.Close()
	d.nextBuild = "old"
	tg = &Target{BaseURL: stuck.URL, Password: "secret", poll: 50 * time.Millisecond}
	err := tg.Update(context.Background(), payload(), time.Second, nil)
	if err == nil || !strings.Contains(err.Error(), "still reports build old") {
		t.Errorf("stuck device: %v", err)
	}
}

// A device that answered once and then hangs until the deadline: the error
// must still say what the device last reported, not that the final request
// was cut short.
func TestWaitKeepsLastAnswer(t *testing.T) {
	var mu sync.Mutex
	answered := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		first := !answered
		answered = true
		mu.Unlock()
		if !first {
			<-r.Context().Done()
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"BuildTimestamp": "old", "Hostname": "presscap"})
	}))
	defer srv.Close()
	tg := &Target{BaseURL: srv.URL, Password: "secret", poll: 50 * time.Millisecond}
	err := tg.Wait(context.Background(), "new", time.Second)
	if err == nil || !strings.Contains(err.Error(), "still reports build old") {
		t.Errorf("Wait = %v, want the build the device last reported", err)
	}
}

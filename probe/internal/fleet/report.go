// Package fleet is the provider's view of its probes: the health report a
// probe writes to the server (fleet/status/<id>.json) and its assessment
// (ok, warning, fault and why) for `probe fleet`.
package fleet

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// Schema is the report format's version; a reader refuses a newer one
// rather than misjudge it.
const Schema = 1

// Report is one probe's health, written at boot, after each upload run and
// at least daily. Its JSON names are an API: add fields, never rename.
type Report struct {
	Schema   int    `json:"schema"`
	ID       string `json:"id"`
	IDSource string `json:"id_source"`
	Hostname string `json:"hostname"`
	// Label is the provider's reference for this probe (fleet/labels.json).
	Label string `json:"label,omitempty"`
	// Time is when the report was written (the probe's clock).
	Time        time.Time `json:"time"`
	ClockSynced bool      `json:"clock_synced"`
	Versions    Versions  `json:"versions"`
	UptimeS     int64     `json:"uptime_s"`
	Disk        Disk      `json:"disk"`
	Links       []Link    `json:"links"`
	// TriggerDevices are the presenters seen since boot.
	TriggerDevices []string `json:"trigger_devices"`
	SoundCard      bool     `json:"sound_card"`
	LED            bool     `json:"led"`
	// Presses are those since the last report, with their files.
	Presses []Press `json:"presses"`
	Queue   Queue   `json:"queue"`
	Upload  Upload  `json:"upload"`
	Config  Config  `json:"config"`
	// FleetConfig is the server's configuration for this probe, if any.
	FleetConfig *FleetConfig `json:"fleet_config,omitempty"`
	// Messages are the last ten warnings or errors, oldest first.
	Messages []Message `json:"messages"`
	// DevicePassword is the per-device gokrazy password: it leaves the
	// probe only here (the pinned server, the probe's own account).
	DevicePassword string `json:"device_password,omitempty"`
	// DevicePasswordSealed replaces DevicePassword where the image names
	// upload.password_recipient (probes sharing one account): the password
	// in a NaCl anonymous box to the provider's key, base64.
	DevicePasswordSealed string `json:"device_password_sealed,omitempty"`
	// Update is the release channel's state, nil where releases are off.
	Update *Update `json:"update,omitempty"`
	// Tunnel is the remote access the provider asked for (fleet/tunnel/),
	// nil where the tunnel is off.
	Tunnel *Tunnel `json:"tunnel,omitempty"`
}

// Tunnel is the state of the reverse tunnel to the probe's web UI and
// status page (issue 14).
type Tunnel struct {
	// State is "idle" (no request on the server), "open", "expired"
	// (max_duration reached; the same file does not open it again),
	// "refused" (the request or the server's answer) or "error".
	State     string    `json:"state"`
	LastCheck time.Time `json:"last_check,omitzero"`
	// Requested is the request file's time on the server; By and Reason
	// are what it says.
	Requested time.Time `json:"requested,omitzero"`
	By        string    `json:"by,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	// WebPort and StatusPort are the ports on the server's loopback.
	WebPort    int       `json:"web_port,omitempty"`
	StatusPort int       `json:"status_port,omitempty"`
	Opened     time.Time `json:"opened,omitzero"`
	Until      time.Time `json:"until,omitzero"`
	Error      string    `json:"error,omitempty"`
}

// Versions of what runs.
type Versions struct {
	Image string `json:"image"` // the image's build timestamp
	Probe string `json:"probe"`
}

// Disk is the capture disk and the ring on it.
type Disk struct {
	Present    bool      `json:"present"`
	Model      string    `json:"model,omitempty"`
	SizeBytes  int64     `json:"size_bytes"`
	FreeBytes  int64     `json:"free_bytes"`
	Errors     int       `json:"errors"`
	RingOldest time.Time `json:"ring_oldest,omitzero"`
	RingNewest time.Time `json:"ring_newest,omitzero"`
}

// Link is one capture link.
type Link struct {
	Name string `json:"name"`
	// State is "up", "down" or "missing".
	State string `json:"state"`
	// Packets and Drops count since the last report.
	Packets uint64 `json:"packets"`
	Drops   uint64 `json:"drops"`
}

// Press is one press and the files its window gave.
type Press struct {
	Time  time.Time `json:"time"`
	Files []string  `json:"files"`
}

// Queue is the upload queue.
type Queue struct {
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
}

// Upload is the last upload run.
type Upload struct {
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastResult  string    `json:"last_result"`
	LastError   string    `json:"last_error,omitempty"`
}

// Config says which configuration is in force.
type Config struct {
	Hash   string `json:"hash"`   // "sha256:<hex>" of the file's bytes
	Source string `json:"source"` // the file's path, or "built-in"
}

// FleetConfig is what became of the configuration the server offers
// (fleet/config/): in force, waiting for the restart that applies it, or
// refused with its errors by field (the last good one stays in force).
type FleetConfig struct {
	Source string   `json:"source"` // below remote_dir; "" when the server has none
	Hash   string   `json:"hash"`   // "sha256:<hex>" of the file's bytes
	State  string   `json:"state"`  // "applied", "restart pending", "refused", "none"
	Errors []string `json:"errors,omitempty"`
}

// Message is one warning or error from the log.
type Message struct {
	Time  time.Time `json:"time"`
	Level string    `json:"level"` // "warning" or "error"
	Text  string    `json:"text"`
}

// Marshal is the report as written to the server.
func (r Report) Marshal() ([]byte, error) {
	r.Schema = Schema
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	return append(b, '\n'), nil
}

// Parse reads one report, refusing a newer schema or one without an id.
func Parse(b []byte) (Report, error) {
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return Report{}, fmt.Errorf("not a health report: %w", err)
	}
	if r.Schema > Schema {
		return Report{}, fmt.Errorf("schema %d is newer than this program's %d", r.Schema, Schema)
	}
	if r.ID == "" {
		return Report{}, fmt.Errorf("no id")
	}
	return r, nil
}

// MaxMessages is how many warnings and errors a report carries.
const MaxMessages = 10

// Recent keeps the last MaxMessages warnings and errors for the report.
// It is safe for concurrent use; the zero value is ready.
type Recent struct {
	mu   sync.Mutex
	list []Message
}

// Add records one message, dropping the oldest beyond MaxMessages.
func (r *Recent) Add(m Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, m)
	if n := len(r.list); n > MaxMessages {
		r.list = append([]Message(nil), r.list[n-MaxMessages:]...)
	}
}

// List returns a copy, oldest first.
func (r *Recent) List() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message{}, r.list...)
}

// Update is the probe's side of the fleet's releases (issue 14).
type Update struct {
	Channel string `json:"channel"`
	// LastCheck is when the channel was last read.
	LastCheck time.Time `json:"last_check,omitzero"`
	// Offered is the release the channel offers, "" if none.
	Offered string `json:"offered,omitempty"`
	// State is "current", "downloading", "waiting to reboot: <why>",
	// "installing", "rebooting", "refused" or "error".
	State string `json:"state,omitempty"`
	// Refused is the last release refused, with why (signature, hash,
	// older, other instance, failed before).
	Refused *UpdateRefusal `json:"refused,omitempty"`
	// UpdatedFrom is the build this one replaced, once it confirmed.
	UpdatedFrom string `json:"updated_from,omitempty"`
	// Failed are builds that were installed and did not confirm (the
	// probe booted its previous build again); none is installed again,
	// but for one more try a day after a failure for "server not reached"
	// alone.
	Failed []UpdateFailure `json:"failed,omitempty"`
}

// UpdateRefusal is a release the probe would not install.
type UpdateRefusal struct {
	Version string    `json:"version,omitempty"`
	Time    time.Time `json:"time"`
	Error   string    `json:"error"`
}

// UpdateFailure is an installed build that did not confirm itself.
type UpdateFailure struct {
	Version string    `json:"version"`
	Time    time.Time `json:"time"`
	Reason  string    `json:"reason"`
	// ServerOnly: the build lacked nothing but the provider's server
	// (down, or a quiet network), which says little about the build.
	ServerOnly bool `json:"server_only,omitempty"`
	// Tries is how many trials of the build failed (0 in older records: 1).
	Tries int `json:"tries,omitempty"`
}

package config

import (
	"time"

	"github.com/presscap/presscap/beeper"
	"github.com/presscap/presscap/leds"
	"github.com/presscap/presscap/probe/internal/capture"
	"github.com/presscap/presscap/probe/internal/ports"
	"github.com/presscap/presscap/probe/internal/upload"
)

// Config is the whole probe configuration. Every field has a default
// (DefaultConfig); a file only names what it changes.
type Config struct {
	// Hostname starts every file name; empty means the system's hostname.
	Hostname string `json:"hostname"`
	// Network is how the probe is cabled: its mode and ports.
	Network Network `json:"network"`
	// Links are the capture interfaces in single mode; in inline and
	// mirror mode network.ports make them.
	Links []Link `json:"links"`
	// Ring is the on-disk packet ring.
	Ring Ring `json:"ring"`
	// Trigger is the presenter input and the window a press saves.
	Trigger Trigger `json:"trigger"`
	// Exports are the files written per press: one per entry.
	Exports []Export `json:"exports"`
	// Storage finds, mounts and lays out the USB disk.
	Storage Storage `json:"storage"`
	// Clock decides whether the clock is synced at a press.
	Clock Clock `json:"clock"`
	// Status is the HTTP status listener and its trigger endpoint.
	Status Status `json:"status"`

	Beeper beeper.Config `json:"beeper"`
	Leds   leds.Config   `json:"leds"`
	Upload upload.Config `json:"upload"`
	// Release is how the probe trusts the fleet's update bundles.
	Release Release `json:"release"`
	// Tunnel is the remote access to the web UI and status page.
	Tunnel Tunnel `json:"tunnel"`

	// fixed are the warnings of what Parse corrected (see upgrade).
	fixed Errors
	// zoneConflict is an earlier version's upload.time_zone that differs
	// from clock.time_zone (see oneTimeZone), refused by Validate.
	zoneConflict string
	// linksWithPorts says the file named links besides network.ports,
	// which make the links.
	linksWithPorts bool
}

// Network modes (see probe/internal/ports).
const (
	ModeInline = ports.Inline // a transparent bridge over two ports
	ModeMirror = ports.Mirror // ports receiving a copy of the traffic
	ModeSingle = ports.Single // capture the management port (links)
)

// Network is how the probe is cabled.
type Network struct {
	// Mode is "inline", "mirror" or "single".
	Mode string `json:"mode"`
	// Ports are the two bridged interfaces (inline) or the capture
	// interfaces (mirror); each is a capture link named after it.
	Ports []Port `json:"ports"`
	// RecordOwn keeps the probe's own traffic on the bridge (its DHCP,
	// NTP, status page and upload) in the ring; off by default.
	RecordOwn bool `json:"record_own"`
}

// Port is one network port.
type Port struct {
	// Interface is the network interface name, e.g. "eth1".
	Interface string `json:"interface"`
	// Side tells the port's side of the bridge ("router", "phone") in
	// manifests; empty means Interface.
	Side string `json:"side"`
}

// SideName returns the port's side.
func (p Port) SideName() string {
	if p.Side != "" {
		return p.Side
	}
	return p.Interface
}

// Setup is the network mode as probe/internal/ports applies it.
func (n Network) Setup() ports.Setup {
	s := ports.Setup{Mode: n.Mode}
	if n.Mode != ModeSingle {
		for _, p := range n.Ports {
			s.Ports = append(s.Ports, p.Interface)
		}
	}
	return s
}

// portLinks are the capture links network.ports make: one per port,
// named after it.
func (n Network) portLinks() []Link {
	var ls []Link
	for _, p := range n.Ports {
		ls = append(ls, Link{Interface: p.Interface, Side: p.SideName(), Inbound: n.Mode == ModeInline})
	}
	return ls
}

// Link is one capture interface.
type Link struct {
	// Interface is the network interface name, e.g. "eth0".
	Interface string `json:"interface"`
	// Name is the link's name in export filters and file names; empty
	// means Interface.
	Name string `json:"name"`
	// Side is the side of the bridge the link is on (from network.ports),
	// for manifests; empty in single mode.
	Side string `json:"-"`
	// Inbound records only what arrives on the interface (capture.Link):
	// on the ports of the inline bridge, each crossing frame once.
	Inbound bool `json:"-"`
}

// LinksOf returns the links exports[].link = name selects: the link of
// that name, or every link on the side name (network.ports); links and
// sides share one namespace (Validate).
func (c Config) LinksOf(name string) []string {
	var out []string
	for _, l := range c.Links {
		if l.LinkName() == name || l.Side == name {
			out = append(out, l.LinkName())
		}
	}
	return out
}

// LinkName returns the name an export refers to.
func (l Link) LinkName() string {
	if l.Name != "" {
		return l.Name
	}
	return l.Interface
}

// Ring is the on-disk packet ring.
type Ring struct {
	// Dir is the ring's directory, relative to the storage root.
	Dir string `json:"dir"`
	// Size is the ring's size on disk.
	Size Size `json:"size"`
	// MaxAge hides packets older than this (privacy). Default: the
	// configuration's NeededAge; 0 keeps everything the size allows.
	MaxAge Duration `json:"max_age"`
	// ExpectedMbps is the average traffic rate the ring is sized for, in
	// megabits per second; check uses it to tell whether before + after
	// fits in the history the ring holds.
	ExpectedMbps float64 `json:"expected_mbps"`
	// Snaplen is what packets that match no rule keep; 0 = whole packet.
	Snaplen uint32 `json:"snaplen"`
	// Encrypt seals a ring created from now on (ChaCha20-Poly1305) with a
	// key kept in storage.state_dir on the SD card, so a lost USB disk
	// reveals no packet. A ring already on the disk stays as it is.
	Encrypt bool `json:"encrypt"`
	// Rules are applied in order in the kernel: the first rule whose
	// filter matches decides the packet's snap length, or discards it.
	Rules []RingRule `json:"rules"`
}

// RingRule is one ring rule, in the same JSON as `probe capture -rules`.
type RingRule = capture.Rule

// Repeat modes: what a press does while an earlier capture's window is
// still open.
const (
	RepeatExtend   = "extend"   // one set of files covering both presses
	RepeatSeparate = "separate" // a set of files per press
	RepeatIgnore   = "ignore"   // the later press is only logged
)

// Trigger is the presenter input and the window a press saves.
type Trigger struct {
	// Before is how much history before the press is saved.
	Before Duration `json:"before"`
	// After is how long after the press is saved; the files are cut when
	// it has passed.
	After Duration `json:"after"`
	// Repeat is what a press inside an open window does: "extend",
	// "separate" or "ignore".
	Repeat string `json:"repeat"`
	// MaxWindow bounds a window that repeated presses keep extending.
	MaxWindow Duration `json:"max_window"`
	// InputDir is watched for event devices (hot-plug).
	InputDir string `json:"input_dir"`
	// Rescan is how often InputDir is listed again, in case a
	// notification was missed.
	Rescan Duration `json:"rescan"`
	// Grab takes the devices exclusively, so presses reach nothing else.
	Grab bool `json:"grab"`
	// Devices are the accepted input devices; a device is accepted if
	// any entry matches.
	Devices []Device `json:"devices"`
	// Profiles give the buttons meaning: a key presses the profile that
	// lists it, a key in none the first profile. Empty: every key is the
	// same press, with before, after and exports above.
	Profiles []Profile `json:"profiles"`
}

// MaxProfiles bounds the profiles: the acknowledgement counts the
// profile's position in beeps and flickers.
const MaxProfiles = 8

// Profile is what one button means.
type Profile struct {
	// Name is in file names, the manifest and ?profile=: lower-case
	// letters, digits, '-'.
	Name string `json:"name"`
	// Label is for people ("phone"); empty: the name.
	Label string `json:"label"`
	// Keys press this profile; each must be one a device entry accepts.
	Keys []string `json:"keys"`
	// Before and After replace trigger.before and trigger.after; 0 keeps
	// those.
	Before Duration `json:"before"`
	After  Duration `json:"after"`
	// Exports replace the top-level exports; empty keeps those.
	Exports []Export `json:"exports"`
}

// ProfileIndex returns the position of the named profile, or -1.
func (t Trigger) ProfileIndex(name string) int {
	for i, p := range t.Profiles {
		if p.Name == name {
			return i
		}
	}
	return -1
}

// Span returns the profile's before and after, the trigger's where it
// keeps them.
func (t Trigger) Span(p Profile) (before, after time.Duration) {
	before, after = t.Before.D(), t.After.D()
	if p.Before > 0 {
		before = p.Before.D()
	}
	if p.After > 0 {
		after = p.After.D()
	}
	return before, after
}

// Device names accepted input devices.
type Device struct {
	// Vendor is the USB vendor id in hex ("046d"); empty matches any.
	Vendor string `json:"vendor"`
	// Product is the USB product id in hex; empty matches any.
	Product string `json:"product"`
	// Name is a substring of the device's name; empty matches any.
	Name string `json:"name"`
	// Keys are key names (KEY_PAGEUP) or numbers; the device must have
	// at least one of them, and only they trigger. Empty: any key.
	Keys []string `json:"keys"`
}

// Export is one file per press.
type Export struct {
	// Name is in the file name: letters, digits, '-', '_', '.'.
	Name string `json:"name"`
	// Filter is a tcpdump expression; empty keeps every packet.
	Filter string `json:"filter"`
	// Link restricts the file to one link's packets; empty means all.
	Link string `json:"link"`
	// Format is "pcap" (classic libpcap, nanosecond timestamps; the
	// default) or "pcapng" (also carries an "unsynced clock" comment and
	// links of different types; the default in inline mode, where it will
	// carry each frame's direction).
	Format string `json:"format"`
}

// Output choices: where the files of a press go.
const (
	OutputQueue = "queue" // the upload queue
	OutputRoot  = "root"  // the storage root's capture directory
)

// Storage finds and mounts the USB disk and lays it out.
type Storage struct {
	// Label is the filesystem label of the disk's partition.
	Label string `json:"label"`
	// FirstUSB falls back to the first partition of the first USB disk
	// when no partition carries Label.
	FirstUSB bool `json:"first_usb"`
	// Device names a block device explicitly (e.g. "/dev/sda1"); it
	// overrides Label and FirstUSB.
	Device string `json:"device"`
	// MountPoint is where the disk is mounted.
	MountPoint string `json:"mount_point"`
	// FSTypes are tried in order when mounting.
	FSTypes []string `json:"fs_types"`
	// FallbackPerm records onto PermDir when no disk is usable.
	FallbackPerm bool `json:"fallback_perm"`
	// PermDir is the storage root on /perm when FallbackPerm is used.
	PermDir string `json:"perm_dir"`
	// Output is where files go: "queue" (QueueDir) or "root" (SaveDir).
	Output string `json:"output"`
	// QueueDir is the upload queue, relative to the storage root.
	QueueDir string `json:"queue_dir"`
	// SaveDir is where files go with output "root", relative to the
	// storage root.
	SaveDir string `json:"save_dir"`
	// Retry is how often a missing or broken disk is looked for again.
	Retry Duration `json:"retry"`
	// StateDir keeps what must survive reboots and disk changes: the
	// upload's SSH key and schedule state. It belongs on /perm.
	StateDir string `json:"state_dir"`
	// SysBlock and DevDir are where block devices are listed and opened.
	SysBlock string `json:"sys_block"`
	DevDir   string `json:"dev_dir"`
}

// Clock sync sources.
const (
	SyncGokrazy  = "gokrazy"  // a clock step after start that is not the saved shutdown time, or adjtimex
	SyncAdjtimex = "adjtimex" // the kernel's STA_UNSYNC flag (chrony, systemd-timesyncd)
	SyncAlways   = "always"   // the clock has an RTC or is trusted
	SyncNever    = "never"    // mark every capture unsynced
)

// Clock decides whether the clock is synced.
type Clock struct {
	// Sync is the source: "gokrazy", "adjtimex", "always", "never".
	Sync string `json:"sync"`
	// NTPTimefile is where gokrazy's ntp keeps the time of the last
	// shutdown; a clock step to that time is not a sync.
	NTPTimefile string `json:"ntp_timefile"`
	// TimeZone is an IANA zone name ("Europe/Berlin"), "UTC" or "Local"
	// (the image's /etc/localtime): the one local time of upload.time,
	// beeper.quiet and release.window.
	TimeZone string `json:"time_zone"`
}

// Location is TimeZone loaded.
func (c Clock) Location() (*time.Location, error) {
	switch c.TimeZone {
	case "", "Local":
		return time.Local, nil
	}
	return time.LoadLocation(c.TimeZone)
}

// Status is the HTTP status listener.
type Status struct {
	// Listen lists host:port addresses; the host "private" means every
	// private, link-local and loopback address of the device. Empty: off.
	Listen []string `json:"listen"`
	// Token authorizes POST /trigger as "Authorization: Bearer TOKEN".
	Token string `json:"token"`
	// PasswordFiles hold gokrazy's password, which authorizes the trigger
	// endpoint with HTTP Basic auth (user "gokrazy"); the first readable
	// file counts.
	PasswordFiles []string `json:"password_files"`
	// RecentPresses is how many presses the status page lists.
	RecentPresses int `json:"recent_presses"`
}

// R400Keys are the keys of a Logitech R400 presenter.
var r400Keys = []string{"KEY_PAGEUP", "KEY_PAGEDOWN", "KEY_F5", "KEY_ESC", "KEY_DOT"}

// DefaultConfig returns the configuration used for every field a file
// does not set. Only the SFTP target (upload) has no working default.
func DefaultConfig() Config {
	c := Config{
		Network: Network{Mode: ModeSingle},
		Links:   []Link{{Interface: "eth0"}},
		Ring: Ring{
			Dir:          "ring",
			Size:         4 << 30,
			ExpectedMbps: 20,
			Rules:        DefaultRingRules(),
			Encrypt:      true,
		},
		Trigger: Trigger{
			Before:    Duration(60e9),
			After:     Duration(30e9),
			Repeat:    RepeatExtend,
			MaxWindow: Duration(30 * 60e9),
			InputDir:  "/dev/input",
			Rescan:    Duration(5e9),
			Grab:      true,
			// The R400's receiver comes with either product id; any other
			// Logitech device (an installer's keyboard) is not taken.
			Devices: []Device{
				{Vendor: "046d", Product: "c52d", Keys: append([]string(nil), r400Keys...)},
				{Vendor: "046d", Product: "c538", Keys: append([]string(nil), r400Keys...)},
			},
		},
		Exports: []Export{{Name: "all"}},
		Storage: Storage{
			Label:      "PRESSCAP",
			FirstUSB:   true,
			MountPoint: "/mnt", // an empty directory in gokrazy's read-only root
			FSTypes:    []string{"ext4", "vfat"},
			PermDir:    "/perm/presscap",
			Output:     OutputQueue,
			QueueDir:   "upload-queue",
			SaveDir:    "captures",
			Retry:      Duration(5e9),
			StateDir:   "/perm/presscap/state",
			SysBlock:   "/sys/class/block",
			DevDir:     "/dev",
		},
		Clock: Clock{Sync: SyncGokrazy, NTPTimefile: "/perm/home/ntp/ntp-time-at-last-shutdown", TimeZone: "Local"},
		Status: Status{
			Listen:        []string{"private:8080"},
			PasswordFiles: []string{"/perm/gokr-pw.txt", "/etc/gokr-pw.txt"},
			RecentPresses: 20,
		},
		Beeper: beeper.DefaultConfig(),
		Leds:   leds.DefaultConfig(),
		Upload: upload.DefaultConfig(),
		Release: Release{Channel: "stable", CheckInterval: Duration(6 * time.Hour),
			QuietAfterPress: Duration(30 * time.Minute), Window: "03:00-05:00", ConfirmWithin: Duration(10 * time.Minute)},
		Tunnel: Tunnel{Enabled: true, CheckInterval: Duration(5 * time.Minute), MaxDuration: Duration(2 * time.Hour)},
	}
	c.Ring.MaxAge = c.NeededAge()
	c.Upload.TimeZone = c.Clock.TimeZone // the one zone (see oneTimeZone)
	return c
}

// HeaderSnap is what the default ring rules keep of a packet whose
// payload is private: Ethernet (14), two VLAN tags (8), IPv6 (40) and a
// TCP header with every option (60) make 122 bytes; an RTP header after
// UDP fits as well.
const HeaderSnap = 160

// DefaultRingRules keep signalling whole (DNS, SIP, DHCP, DHCPv6 over
// UDP; ICMP)
// and cut every other IP packet (TLS, QUIC, bulk TCP, RTP's voice) to its
// headers: a fault can be told from them, the household's content cannot
// be read. Frames that are not IP (ARP, PPPoE discovery) stay whole.
func DefaultRingRules() []RingRule {
	return []RingRule{
		// UDP only: with TCP too the program outgrows BPF's 8-bit jumps
		// once the capture adds its VLAN snap lengths (SIP and DNS over
		// TCP keep their headers).
		{Filter: "udp port 53 or udp port 5060 or udp portrange 67-68 or udp portrange 546-547 or icmp or icmp6"},
		{Filter: "ip or ip6", Snaplen: HeaderSnap},
	}
}

// NeededAge is the most history a press can save: the longest before (of
// the trigger and its profiles) plus max_window, the bound of a window
// that repeated presses extend, and at least every before + after. It is
// ring.max_age's default, so that the ring never keeps what no press can
// need (privacy).
func (c Config) NeededAge() Duration {
	before, after := c.Trigger.Before, c.Trigger.After
	for _, p := range c.Trigger.Profiles {
		b, a := c.Trigger.Span(p)
		before, after = max(before, Duration(b)), max(after, Duration(a))
	}
	// Capped at MaxDuration: out-of-range values are Validate's to name.
	sum := func(a, b Duration) Duration {
		if a < 0 || b < 0 || a.D() > MaxDuration || b.D() > MaxDuration {
			return Duration(MaxDuration)
		}
		return min(a+b, Duration(MaxDuration))
	}
	return max(sum(before, c.Trigger.MaxWindow), sum(before, after))
}

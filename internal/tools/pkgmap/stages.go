package main

// A stage is a group of packages along presscap's data flow. Stages are
// listed from the bottom up: a package may import packages of its own
// stage and of the stages before it, never of a stage after it.
type stage struct {
	name string
	what string
	// pkgs are paths relative to the module; "x/..." is x and every
	// package below it. The longest match decides.
	pkgs []string
}

// stages is the table every package of `go list ./...` must be in: a new
// package without an entry fails the generator, naming it. The ring comes
// before the capture because both the capture (writing) and the window
// (reading) depend on its format; otherwise the stages follow the flow,
// with what sits beside the flow (feedback, fleet, status, config) placed
// where its imports put it.
var stages = []stage{
	{"shared", "small utilities several stages use", []string{
		"internal/safefile", "internal/field", "internal/daytime",
		"internal/disklabel", "internal/release", "internal/gokrazyhttp",
		"probe/internal/filenames", "probe/internal/identity", "probe/internal/devicepw",
	}},
	{"ring", "the packet ring and the disk it lives on", []string{
		"ringfs/...", "probe/internal/storage/...",
	}},
	{"capture", "packets and presses coming in", []string{
		"probe/internal/capture/...", "probe/internal/filter/...", "probe/internal/ports/...",
		"probe/internal/trigger/...",
	}},
	{"feedback", "beside the flow: the customer hears and sees what happened", []string{
		"beeper/...", "leds/...", "probe/internal/feedback/...",
	}},
	{"window", "a press opens window #N: its bookkeeping, pending records, the clock", []string{
		"probe/internal/window/...", "probe/internal/clock/...", "probe/internal/pending/...",
	}},
	{"export", "window #N cut out of the ring into PCAP files, report and manifest", []string{
		"probe/internal/export/...", "probe/internal/pcapfile/...", "probe/internal/report/...",
		"probe/internal/cut/...", "probe/internal/ringimport/...",
	}},
	{"fleet reports", "beside the flow: the report format and the pulled updates the upload carries", []string{
		"probe/internal/fleet", "probe/internal/fleet/update/...",
	}},
	{"upload", "the queue sent to the provider's SFTP server", []string{
		"probe/internal/upload/...",
	}},
	{"status", "beside the flow: the status page, the trigger endpoint, the installer checks", []string{
		"probe/internal/status/...",
	}},
	{"config", "beside the flow: the one configuration, gathering each stage's section", []string{
		"probe/config/...",
	}},
	{"fleet agents", "beside the flow: the health report writer, the server's configuration, the provider's enrolment, the tunnel", []string{
		"probe/internal/fleet/reporter/...", "probe/internal/fleet/fleetconfig/...", "probe/internal/fleet/enroll/...", "probe/internal/fleet/pwreboot/...", "probe/internal/fleet/tunnel/...",
	}},
	{"service", "wiring: the stages put together into the running probe", []string{
		"probe/internal/service/...",
	}},
	{"image tool", "the gokrazy image builder and update client behind `go run ./image`", []string{
		"image/internal/...",
	}},
	{"commands", "the binaries: flags and wiring", []string{
		"probe", "image",
	}},
	{"tests and benchmarks", "imported by tests and bench programs only", []string{
		"internal/testing/...", "internal/bench/...", "internal/tools/...", "docs",
		"probe/internal/fleet/fleettest", "probe/internal/report/reporttest", "probe/internal/report/reportcheck", "probe/internal/pcapfile/pcapfiletest",
		"beeper/alsa/alsatest", "beeper/internal/tonetest", "beeper/vmtest/...", "probe/internal/trigger/vmcheck",
		"image/systemtest/...",
	}},
}

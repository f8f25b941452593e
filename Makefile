# presscap build, test and benchmark entry points. See README.md and
# docs/dev/testing.md. Go must be on PATH (make deps says where to get it).
SHELL := /bin/bash
# A pipeline fails when any command in it fails (bench-filter's).
.SHELLFLAGS := -o pipefail -c
GO ?= go
# Everything that goes into the image is built like this.
IMAGE_ENV := CGO_ENABLED=0 GOOS=linux GOARCH=arm64

.PHONY: all check test deps vet bench build build-arm64
all: build

build:
	$(GO) build ./...

build-arm64:
	$(IMAGE_ENV) $(GO) build ./...

vet:
	@bash .ci/gofmt
	$(GO) vet ./...
	$(IMAGE_ENV) $(GO) vet ./...

# make check: the quick tier, for every edit, without root (under a
# minute): the -short tests, where those needing root, namespaces, QEMU,
# an image build or a missing Debian tool skip, under the race detector
# (cgo: gcc). Go caches the results of packages that did not change;
# -s -w spares the linker the symbol table and DWARF, which halves the
# link time of the seventy race-enabled test binaries; -trimpath keeps
# the clone's directory out of what the build cache keys on, so another
# clone (or a worktree) reuses the compiled packages (file names in panics
# then start at the module path). go test starts packages in the order it
# is given them: CHECK_FIRST, the slowest under -short -race, go first
# rather than alone at the end (ringfs is last in ./...'s order).
CHECK_FIRST = ./ringfs ./probe/internal/filter ./image/internal/updater ./probe/internal/export
check:
	@bash .ci/deps gcc
	$(RACE_ENV) $(GO) test -short -race -trimpath -ldflags='-s -w' $(CHECK_FIRST) ./...

# A race-enabled binary sleeps a second before it exits (ThreadSanitizer's
# atexit_sleep_ms) so that other threads may still report: the testing
# package already fails the test a race happened in, so this only costs
# each test binary a second of wall time (half a minute of make check).
# Options set in GORACE still apply.
RACE_ENV := GORACE='atexit_sleep_ms=0 $(GORACE)'

# make test: the whole suite, in this order. Needs root (network
# namespaces, AF_PACKET, loop devices) and the Debian packages of
# .ci/packages.txt, which deps installs.
test: deps vet build-arm64 test-go test-race test-portaudio test-arm64-feedback systemtest

# What the tests need that this machine lacks, as root: the Debian packages
# of .ci/packages.txt, arm64 as a dpkg architecture and systemd-boot's EFI
# loaders under build/ (for the VM images). Quiet when all is there.
deps:
	@bash .ci/deps
	@bash .ci/systemd-boot arm64 $(SDBOOT_DIR)
	@bash .ci/systemd-boot amd64 $(SDBOOT_X64_DIR)

.PHONY: test-go test-race
# The packages test-race runs are left to it: their whole tests run once,
# under the race detector, rather than twice.
test-go:
	$(GO) test -count=1 -timeout 20m $(filter-out $(RACE_PACKAGES),$(shell $(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.Dir}}{{end}}' ./... | sed "s|^$$PWD|.|"))

# The race detector on the whole tests of the packages whose code or tests
# start goroutines or whose code shares state between them
# (.ci/race-packages finds them, so the list follows the code). One
# package at a time (-p 1): the race detector slows the code 5-10 times,
# and the end-to-end tests' lines must not outrun it for lack of CPU.
RACE_PACKAGES = $(shell bash .ci/race-packages)
test-race:
	$(RACE_ENV) $(GO) test -race -p 1 -count=1 -timeout 20m $(RACE_PACKAGES)

# beeper's portaudio backend (cgo, libportaudio: Debian portaudio19-dev); it
# never goes into the image, so it is built and tested only here.
.PHONY: test-portaudio
test-portaudio:
	$(GO) vet -tags portaudio ./beeper/...
	$(GO) test -count=1 -tags portaudio ./beeper/

# beeper and leds again as arm64 binaries under qemu-user: the ALSA structures,
# ioctl numbers and fake-device playback as the image's GOARCH lays them out.
.PHONY: test-arm64-feedback
test-arm64-feedback:
	@command -v qemu-aarch64 >/dev/null || { echo "qemu-aarch64 missing: install the Debian package qemu-user"; exit 1; }
	CGO_ENABLED=0 GOARCH=arm64 $(GO) test -exec qemu-aarch64 -count=1 ./beeper/ ./beeper/alsa/... ./beeper/tone/ ./leds/...

# Benchmarks that print ratios against tcpdump, dd and friends measured in the
# same run. Each area adds its own target as a prerequisite: `bench: bench-ring`.
.PHONY: bench
bench:

# ringfs: the encrypted ring (ring.encrypt) against the clear one and dd
# (append and a cold window; `build/ringbench -encrypted-only` runs only
# these rows); append throughput against dd oflag=direct, 2-minute window
# extraction from 4 GiB and 8 GiB rings against dd and against dumpcap-style
# files + mergecap + editcap, peak RSS, reopen time. Creates ~20 GB under
# build/ (removed at the end); run as root so it can drop the page cache.
# Figures in docs/dev/benchmarks.md ("The packet ring").
.PHONY: bench-ring
bench: bench-ring
bench-ring:
	mkdir -p build
	$(GO) build -o build/probe-ring ./probe
	$(GO) build -o build/ringbench ./internal/bench/ring
	build/ringbench -probe build/probe-ring -dir build

# probe capture against tcpdump (and dumpcap at the generator's maximum) on a
# veth pair between two namespaces: tcpreplay -K at fixed rates and trafgen
# unthrottled, 64-byte, 1400-byte and mixed frames. Needs root. Figures in
# docs/dev/benchmarks.md ("Live capture").
.PHONY: bench-capture
bench: bench-capture
bench-capture:
	mkdir -p build
	$(GO) build -o build/probe ./probe
	$(GO) build -o build/benchcapture ./internal/bench/capture
	build/benchcapture -probe build/probe

# inline mode: forwarding through the probe's bridge with the capture off and
# on (probe capture -inbound on both ports) against a plain kernel bridge with
# and without tcpdump -i on a port; iperf3 TCP and a trafgen flood of 64-byte
# UDP frames through veth pairs, in one run. Needs root. Figures in
# docs/dev/benchmarks.md ("Inline bridge").
.PHONY: bench-inline
bench: bench-inline
bench-inline:
	mkdir -p build
	$(GO) build -o build/probe ./probe
	$(GO) build -o build/benchinline ./internal/bench/inline
	build/benchinline -probe build/probe

# upload: a 100 MiB queue (10 files) to a loopback sshd, the Uploader against
# OpenSSH's `sftp -b` on the same files, alternating, 5 rounds each; prints the
# median throughputs and their ratio. Needs root and openssh-server/-client.
# Figures in docs/dev/benchmarks.md ("Upload").
.PHONY: bench-upload
bench: bench-upload
bench-upload:
	$(GO) test -count=1 -run '^$$' -bench BenchmarkUploadVsOpenSSH -benchtime 1x -timeout 10m ./probe/internal/upload/

# beeper: what a press pays for its beep, and rendering, against the ack
# sound's own length (120 ms): the benchmarks report it as ack-lengths/op.
.PHONY: bench-feedback
bench: bench-feedback
bench-feedback:
	$(GO) test -run '^$$' -bench . -benchtime 20000x ./beeper/

# filter: ns per packet for a 5-primitive export filter through filter.Matcher
# against x/net/bpf's VM running libpcap's program for the same expression
# (tcpdump -ddd), same frames, timed in alternation in the same run (the
# machine is shared); prints the medians and the ratio. Figures in
# docs/dev/benchmarks.md ("Capture filters").
.PHONY: bench-filter
bench: bench-filter
bench-filter:
	$(GO) test -run '^$$' -bench 'BenchmarkFilter5/interleaved' -benchtime 20000x -count 7 ./probe/internal/filter/ | \
	  $(GO) run ./internal/bench/medians

# Press-to-files latency and ack latency of the running service on a veth
# pair, and a window's export against tcpdump -r/-w of the same packets;
# then the longest `before` a 256 MiB ring saves whole at 100k and 400k
# packets/s, as a fraction of its span (about 100 s; BENCH_DISK_MBPS=60 in
# the environment caps the disk like a slow USB disk).
# Figures in docs/dev/benchmarks.md ("The service").
.PHONY: bench-service
bench: bench-service
bench-service:
	$(GO) test -count=1 -run '^$$' -bench 'PressToFiles|ExportVsTcpdump' -benchtime 5x -timeout 10m ./probe/internal/service/ ./probe/internal/export/
	$(GO) test -count=1 -run '^$$' -bench 'LongestBefore' -benchtime 1x -timeout 10m ./probe/internal/export/

# The status listener under a LAN flood: 300 clients from 40 addresses on a
# veth link holding keep-alive connections or sending 1 MB headers, 5 s
# each, against `probe run` capturing the link, and the same 5 s without a
# flood; memory growth (resident, Go heap, live heap) and descriptors. Needs
# root. Figures in docs/dev/benchmarks.md ("The status listener under a flood").
.PHONY: bench-lan
bench: bench-lan
bench-lan:
	$(GO) test -count=1 -run '^$$' -bench 'LANFlood' -benchtime 1x -timeout 5m ./probe/

# The capture report: analysis per packet and for a 2-minute window of a
# busy line against the export of the same window (goal <= 0.3x), and the
# memory it holds. Figures in docs/dev/benchmarks.md ("The capture report").
.PHONY: bench-report
bench: bench-report
bench-report:
	$(GO) test -count=1 -run '^$$' -bench 'Analysis|HeldAtCaps' -benchtime 10x -timeout 10m ./probe/internal/report/
	$(GO) test -count=1 -run '^$$' -bench ReportInExport -benchtime 10x -timeout 10m ./probe/internal/export/

# ---- The appliance image (image/, gokrazy/). See docs/provider/flashing.md and docs/dev/image.md.
# INSTANCE selects gokrazy/<INSTANCE>/config.json; the image is <INSTANCE>.img.
INSTANCE ?= presscap
IMG ?= $(INSTANCE).img
IMAGE_TOOL := $(GO) run ./image
# systemd-boot for the UEFI (QEMU virt) instance, from Debian's arm64 package,
# unpacked under build/ (never committed).
SDBOOT_DIR := build/systemd-boot
SDBOOT := $(SDBOOT_DIR)/usr/lib/systemd/boot/efi/systemd-bootaa64.efi
QEMU_EFI ?= /usr/share/qemu-efi-aarch64/QEMU_EFI.fd
QEMU_HTTP_PORT ?= 18080
# gokrazy's HTTPS port (the VM instance sets Update.UseTLS; its HTTP port
# then only redirects).
QEMU_HTTPS_PORT ?= 18443
# The guest's capture NIC (eth1) is QEMU's UDP socket backend: Ethernet frames
# sent from 127.0.0.1:$(QEMU_CAPTURE_PEER) to 127.0.0.1:$(QEMU_CAPTURE_PORT),
# one frame per datagram, arrive on eth1.
QEMU_CAPTURE_PORT ?= 18081
QEMU_CAPTURE_PEER ?= 18082
export SYSTEMD_BOOT_EFI := $(abspath $(SDBOOT))
# The x86-64 instances (config.json "Environment": ["GOARCH=amd64"]) boot
# systemd-bootx64.efi from Debian's native systemd-boot-efi package.
SDBOOT_X64_DIR := build/systemd-boot-x64
SDBOOT_X64 := $(SDBOOT_X64_DIR)/usr/lib/systemd/boot/efi/systemd-bootx64.efi
INSTANCE_ARCH = $(if $(shell grep -s 'GOARCH=amd64' gokrazy/$(INSTANCE)/config.json),amd64,arm64)
# The loader an instance without Raspberry Pi firmware ("FirmwarePackage":
# "") boots with: systemd-boot for its architecture.
INSTANCE_SDBOOT = $(if $(shell grep -s '"FirmwarePackage": *""' gokrazy/$(INSTANCE)/config.json),$(if $(filter amd64,$(INSTANCE_ARCH)),$(SDBOOT_X64),$(SDBOOT)))

.PHONY: image image-vm image-x86 vm flash update qemu qemu-x86 systemtest bench-image
image: $(INSTANCE_SDBOOT)
	@bash .ci/deps e2fsprogs ca-certificates
	$(IMAGE_TOOL) build -instance gokrazy/$(INSTANCE) -o $(IMG) $(if $(filter amd64,$(INSTANCE_ARCH)),-systemd-boot $(abspath $(SDBOOT_X64)))

image-vm:
	$(MAKE) --no-print-directory image INSTANCE=presscap-vm

image-x86:
	$(MAKE) --no-print-directory image INSTANCE=presscap-x86

$(SDBOOT_X64):
	bash .ci/systemd-boot amd64 $(SDBOOT_X64_DIR)

# make vm: the VM edition (docs/provider/vm.md) under build/vm/: the system disk and
# the ring disk (ext4, labelled as the probe looks for it) as raw images,
# qcow2 (Proxmox/KVM), vhdx, and streamOptimized VMDKs in an OVA with an
# OVF descriptor (ESXi, VMware Workstation, VirtualBox). Needs qemu-img
# (Debian qemu-utils). RING_SIZE sizes the ring disk (sparse everywhere).
VM_DIR ?= build/vm
RING_SIZE ?= 8G
# $(call vm-disk,NAME): $(VM_DIR)/NAME.img as qcow2, vhdx and vmdk.
define vm-disk
qemu-img convert -f raw -O qcow2 $(VM_DIR)/$(1).img $(VM_DIR)/$(1).qcow2
qemu-img convert -f raw -O vhdx -o subformat=dynamic $(VM_DIR)/$(1).img $(VM_DIR)/$(1).vhdx
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized $(VM_DIR)/$(1).img $(VM_DIR)/$(1).vmdk
endef
vm:
	@command -v qemu-img >/dev/null || { echo "qemu-img missing: install the Debian package qemu-utils"; exit 1; }
	mkdir -p $(VM_DIR)
	$(MAKE) --no-print-directory image INSTANCE=presscap-x86 IMG=$(VM_DIR)/presscap-x86.img
	$(IMAGE_TOOL) ringdisk -instance gokrazy/presscap-x86 -o $(VM_DIR)/presscap-ring.img -size $(RING_SIZE)
	$(call vm-disk,presscap-x86)
	$(call vm-disk,presscap-ring)
	$(IMAGE_TOOL) ova -name presscap-x86 -system $(VM_DIR)/presscap-x86.vmdk -ring $(VM_DIR)/presscap-ring.vmdk -o $(VM_DIR)/presscap-x86.ova
	rm -f $(VM_DIR)/*.vmdk
	@ls -ls $(VM_DIR)

$(SDBOOT):
	bash .ci/systemd-boot arm64 $(SDBOOT_DIR)

# make flash DEV=/dev/sdX: writes $(IMG) to a whole SD card after asking.
flash:
	@test -n "$(DEV)" || { echo "usage: make flash DEV=/dev/sdX [INSTANCE=presscap]"; exit 1; }
	@test -b "$(DEV)" || { echo "$(DEV) is not a block device"; exit 1; }
	@test -f "$(IMG)" || { echo "$(IMG) does not exist: run make image first"; exit 1; }
	@if lsblk -no MOUNTPOINT "$(DEV)" | grep -q .; then echo "$(DEV) has mounted partitions: unmount them first"; exit 1; fi
	@lsblk -o NAME,SIZE,MODEL,TRAN "$(DEV)"
	@read -r -p "Write $(IMG) to $(DEV)? Everything on $(DEV) is lost. Type yes: " ans; [ "$$ans" = yes ] || { echo aborted; exit 1; }
	dd if=$(IMG) of=$(DEV) bs=4M conv=fsync status=progress

# make update [INSTANCE=presscap] [TARGET=https://host:port]: builds a new image
# and pushes it to the running device (root, boot, switch, reboot, wait),
# over HTTPS with the device's certificate pinned on first use when the
# instance sets Update.UseTLS. FROM_HTTP=http://host:port pushes once over
# plain HTTP to a device whose image predates UseTLS. PASSWORD_FILE=file holds
# the device's own password (its health report's device_password).
update: image
	$(IMAGE_TOOL) update -instance gokrazy/$(INSTANCE) -image $(IMG) $(if $(TARGET),-target $(TARGET)) $(if $(FROM_HTTP),-from-http $(FROM_HTTP)) $(if $(PASSWORD_FILE),-password-file $(PASSWORD_FILE))

# make release [INSTANCE=presscap] KEY=file|$$PRESSCAP_RELEASE_KEY[_FILE]
# PREVIOUS=dir [APPROVE_BOOT_CHANGE=1] [URGENT=1] [MBR=1] [RELEASE_DIR=dir]:
# builds the image and writes its signed update bundle (default
# build/release/<INSTANCE>) for <remote_dir>/fleet/release/<channel>/. PREVIOUS
# is the bundle the fleet runs (rollback_safe when the boot files are equal).
.PHONY: release
release: image
	$(IMAGE_TOOL) release -instance gokrazy/$(INSTANCE) -image $(IMG) $(if $(KEY),-key $(KEY)) $(if $(PREVIOUS),-previous $(PREVIOUS)) $(if $(APPROVE_BOOT_CHANGE),-approve-boot-change) $(if $(URGENT),-urgent) $(if $(MBR),-mbr) $(if $(RELEASE_DIR),-o $(RELEASE_DIR))

# make qemu: boots presscap-vm.img (make image-vm) with a USB ring disk
# (build/ring.img), a USB keyboard for the presenter, user networking that
# reaches nothing but this machine, a capture NIC fed over loopback UDP (see
# QEMU_CAPTURE_PORT), the web UI on https://127.0.0.1:$(QEMU_HTTPS_PORT)
# (port 80 on 127.0.0.1:$(QEMU_HTTP_PORT) redirects),
# the serial console on stdio and the QEMU monitor on build/qemu-monitor.sock
# (e.g. `echo 'sendkey pgdn' | socat - UNIX-CONNECT:build/qemu-monitor.sock`).
qemu:
	@test -f presscap-vm.img || { echo "presscap-vm.img does not exist: run make image-vm first"; exit 1; }
	mkdir -p build && test -f build/ring.img || truncate -s 4G build/ring.img
	qemu-system-aarch64 -machine virt -cpu cortex-a72 -smp 2 -m 1024 -bios $(QEMU_EFI) \
	  -drive file=presscap-vm.img,if=none,format=raw,id=root -device virtio-blk-pci,drive=root \
	  -device qemu-xhci,id=xhci -device usb-kbd,bus=xhci.0 \
	  -drive file=build/ring.img,if=none,format=raw,id=ring -device usb-storage,bus=xhci.0,drive=ring \
	  -netdev user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:$(QEMU_HTTP_PORT)-:80,hostfwd=tcp:127.0.0.1:$(QEMU_HTTPS_PORT)-:443 \
	  -device virtio-net-pci,netdev=net0,romfile= \
	  -netdev socket,id=cap,udp=127.0.0.1:$(QEMU_CAPTURE_PEER),localaddr=127.0.0.1:$(QEMU_CAPTURE_PORT) \
	  -device virtio-net-pci,netdev=cap,romfile= \
	  -monitor unix:build/qemu-monitor.sock,server,nowait -nographic

# make qemu-x86: boots the VM edition from make vm (build/vm/) as make qemu
# boots the arm64 one: q35 with OVMF, the ring on the second virtio disk,
# the same ports, capture NIC, serial console and monitor. Changes the raw
# disks in place. TCG unless QEMU_X86_ACCEL=kvm: nested KVM on the build
# machines stops in OVMF ("KVM internal error"), which QEMU does not fall
# back from.
OVMF ?= /usr/share/ovmf/OVMF.fd
QEMU_X86_ACCEL ?= tcg
qemu-x86:
	@test -f $(VM_DIR)/presscap-x86.img || { echo "$(VM_DIR)/presscap-x86.img does not exist: run make vm first"; exit 1; }
	qemu-system-x86_64 -machine q35,accel=$(QEMU_X86_ACCEL) -cpu max -smp 2 -m 1024 -bios $(OVMF) \
	  -drive file=$(VM_DIR)/presscap-x86.img,if=none,format=raw,id=root -device virtio-blk-pci,drive=root \
	  -drive file=$(VM_DIR)/presscap-ring.img,if=none,format=raw,id=ring -device virtio-blk-pci,drive=ring \
	  -device qemu-xhci,id=xhci -device usb-kbd,bus=xhci.0 \
	  -netdev user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:$(QEMU_HTTP_PORT)-:80,hostfwd=tcp:127.0.0.1:$(QEMU_HTTPS_PORT)-:443 \
	  -device virtio-net-pci,netdev=net0,romfile= \
	  -netdev socket,id=cap,udp=127.0.0.1:$(QEMU_CAPTURE_PEER),localaddr=127.0.0.1:$(QEMU_CAPTURE_PORT) \
	  -device virtio-net-pci,netdev=cap,romfile= \
	  -monitor unix:build/qemu-monitor.sock,server,nowait -nographic

# Boots the VM image under QEMU, checks the web UI, updates it with a second
# build and checks the A/B switch and that /perm survived; the arm64 and the
# x86-64 (VM edition, raw and qcow2) images capture, take a press and upload. Needs root for
# nothing, but the Debian packages of .ci/packages.txt. About 3-6 minutes.
systemtest: $(SDBOOT) $(SDBOOT_X64)
	$(GO) test -count=1 -tags systemtest -timeout 30m -v ./image/systemtest/

# Image build time with an empty and with a warm Go build cache, image size
# (apparent and allocated), then the system tests' boot-to-web-UI,
# boot-to-recording, press-to-SFTP and update times under QEMU.
# Figures in docs/dev/benchmarks.md ("The appliance image").
bench: bench-image
bench-image: $(SDBOOT) $(SDBOOT_X64)
	mkdir -p build
	$(GO) build -o build/imagetool ./image
	$(GO) run ./internal/bench/image -imagetool build/imagetool -instance gokrazy/presscap -dir build -go $(GO)

# The VM edition's capture: loss and CPU per frame on a virtio capture NIC at
# the end-to-end test's 40 frames/s and higher rates (VMBENCH_RATES): first
# the same probe on the host (probe capture on a veth pair, the same frames
# and rates) as the reference, then the x86-64 VM edition and the arm64 VM,
# each booted once in QEMU (KVM where it runs OVMF, else TCG), in one run
# (image/systemtest's BenchmarkVMCapture). Needs root and the system tests'
# packages; about 10 minutes. Figures in docs/dev/benchmarks.md ("The VM
# edition on x86-64").
VMBENCH_RATES ?= 40,1000,2000,5000,20000,50000
.PHONY: bench-vm
bench: bench-vm
bench-vm: $(SDBOOT) $(SDBOOT_X64)
	$(GO) test -count=1 -tags systemtest -run '^$$' -bench BenchmarkVMCapture -benchtime 1x -timeout 40m ./image/systemtest/ -vmbench.rates $(VMBENCH_RATES)

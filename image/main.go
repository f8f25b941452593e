// Command image builds presscap's gokrazy disk images and updates running
// devices:
//
//	go run ./image build  -instance gokrazy/presscap -o presscap.img
//	go run ./image update -instance gokrazy/presscap -image presscap.img -target http://presscap
//	go run ./image info   -image presscap.img
//	go run ./image release -instance gokrazy/presscap -image presscap.img -key KEY -previous DIR -o DIR
//	go run ./image ringdisk -instance gokrazy/presscap-x86 -o ring.img -size 8G
//	go run ./image ova -name presscap-x86 -system system.vmdk -ring ring.vmdk -o presscap-x86.ova
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/presscap/presscap/internal/field"
	probeconfig "github.com/presscap/presscap/probe/config"

	"github.com/presscap/presscap/image/internal/assemble"
	"github.com/presscap/presscap/image/internal/gokconfig"
	"github.com/presscap/presscap/image/internal/ovf"
	"github.com/presscap/presscap/image/internal/tlspin"
	"github.com/presscap/presscap/image/internal/updater"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "image:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: image build|update|info|ringdisk|ova|release|release-key [flags]")
		return flag.ErrHelp
	}
	switch args[0] {
	case "build":
		return runBuild(ctx, args[1:], stdout, stderr)
	case "update":
		return runUpdate(ctx, args[1:], stdout, stderr)
	case "info":
		return runInfo(args[1:], stdout, stderr)
	case "ringdisk":
		return runRingDisk(ctx, args[1:], stdout, stderr)
	case "ova":
		return runOVA(args[1:], stdout, stderr)
	case "release":
		return runRelease(args[1:], stdout, stderr)
	case "release-key":
		return runReleaseKey(args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown subcommand %q (build, update, info, ringdisk, ova, release, release-key)", args[0])
}

// checkProbeConfig returns the check of the probe's configuration file as
// the probe will read it on an image whose DHCP client runs on dhcp, so a
// bad config fails the build instead of the device. The storage mount
// point must exist in the read-only root.
func checkProbeConfig(dhcp string) func(dst string, data []byte) ([]string, error) {
	return func(dst string, data []byte) ([]string, error) {
		return checkProbeFile(dst, data, dhcp)
	}
}

func checkProbeFile(dst string, data []byte, dhcp string) ([]string, error) {
	if !slices.Contains(probeconfig.SearchPaths(), dst) {
		return nil, nil
	}
	c, err := probeconfig.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("probe config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("probe config: %w", err)
	}
	if err := c.Network.CheckDHCP(dhcp); err != nil {
		return nil, fmt.Errorf("probe config against the instance's DHCP client (PackageConfig[%q].CommandLineFlags): %w", gokconfig.DHCPPackage, err)
	}
	// The device would correct or put up with these; an image being built
	// is the moment to fix them instead.
	if ws := c.Warnings(); len(ws) > 0 {
		return nil, fmt.Errorf("probe config: the probe would start, but fix these first:\n%w", ws)
	}
	var dirs []string
	if mp := c.Storage.MountPoint; strings.HasPrefix(mp, "/") && !strings.HasPrefix(mp, "/perm/") && !strings.HasPrefix(mp, "/tmp/") {
		dirs = append(dirs, path.Clean(mp))
	}
	return dirs, nil
}

// probeConfig is the probe configuration an instance installs (the
// probe's defaults if it installs none), as the probe will read it.
func probeConfig(cfg *gokconfig.Config) (probeconfig.Config, error) {
	pc := cfg.PackageConfig["github.com/presscap/presscap/probe"]
	for _, dst := range probeconfig.SearchPaths() {
		if c, ok := pc.ExtraFileContents[dst]; ok {
			return probeconfig.Parse([]byte(c))
		}
		if src, ok := pc.ExtraFilePaths[dst]; ok {
			b, err := os.ReadFile(cfg.Resolve(src))
			if err != nil {
				return probeconfig.Config{}, err
			}
			c, err := probeconfig.Parse(b)
			if err != nil {
				return probeconfig.Config{}, fmt.Errorf("%s: %w", src, err)
			}
			return c, nil
		}
	}
	return probeconfig.DefaultConfig(), nil
}

// runRingDisk writes the VM edition's ring disk, labelled as the
// instance's probe configuration looks for it.
func runRingDisk(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ringdisk", stderr)
	instance := fs.String("instance", "gokrazy/presscap-x86", "instance whose probe configuration names the storage label")
	out := fs.String("o", "ring.img", "disk image to write (sparse)")
	size := fs.String("size", "8G", "disk size; the ring (the probe config's ring.size) and the saved captures live on it")
	cfg, n, err := parseDiskFlags(fs, args, instance, size)
	if err != nil {
		return err
	}
	pc, err := probeConfig(cfg)
	if err != nil {
		return err
	}
	if pc.Storage.Label == "" {
		return fmt.Errorf("%s: the probe configuration sets no storage.label, so the probe would not find a ring disk by label", *instance)
	}
	if err := assemble.RingDisk(ctx, *out, n, pc.Storage.Label); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d MiB, ext4 labelled %s)\n", *out, n>>20, pc.Storage.Label)
	return nil
}

// runOVA packs the system and ring disks (streamOptimized VMDKs, made
// with qemu-img) into an OVA for ESXi, VMware Workstation and VirtualBox.
func runOVA(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ova", stderr)
	name := fs.String("name", "presscap-x86", "virtual machine name")
	out := fs.String("o", "presscap-x86.ova", "OVA to write")
	system := fs.String("system", "", "system disk, streamOptimized VMDK")
	ring := fs.String("ring", "", "ring disk, streamOptimized VMDK")
	cpus := fs.Int("cpus", 2, "virtual CPUs")
	mem := fs.Int("memory", 1024, "memory in MiB")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *system == "" || *ring == "" {
		return errors.New("ova: -system and -ring are required")
	}
	o := ovf.Options{Name: *name, CPUs: *cpus, MemoryMiB: *mem, Disks: []string{*system, *ring},
		Networks: []string{"management", "capture"}, ModTime: time.Now().UTC().Truncate(time.Second)}
	if err := ovf.Write(*out, o); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}

// parseDiskFlags parses the flags of a command that writes a disk of
// -size bytes for an -instance (build, ringdisk), and loads the instance.
func parseDiskFlags(fs *flag.FlagSet, args []string, instance, size *string) (*gokconfig.Config, int64, error) {
	if err := fs.Parse(args); err != nil {
		return nil, 0, err
	}
	n, err := parseSize(*size)
	if err != nil {
		return nil, 0, err
	}
	cfg, err := gokconfig.Load(*instance)
	return cfg, n, err
}

// newFlagSet is the flag set of the subcommand name, reporting to stderr.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseSize reads a -size flag: a positive size ("2G", "512MiB").
func parseSize(s string) (int64, error) {
	n, err := field.ParseSize(s)
	if err == nil && n <= 0 {
		err = fmt.Errorf("%q: want a positive size", s)
	}
	if err != nil {
		return 0, fmt.Errorf("-size %w", err)
	}
	return int64(n), nil
}

func runBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("build", stderr)
	instance := fs.String("instance", "gokrazy/presscap", "instance directory holding config.json")
	out := fs.String("o", "presscap.img", "disk image to write")
	size := fs.String("size", "2G", "disk image size (sparse file)")
	ts := fs.String("timestamp", "", "build timestamp, RFC 3339 (default: now)")
	sdboot := fs.String("systemd-boot", os.Getenv("SYSTEMD_BOOT_EFI"), "systemd-boot for UEFI instances: systemd-bootaa64.efi, or systemd-bootx64.efi for GOARCH=amd64")
	workdir := fs.String("workdir", "", "where compiled programs and the generated init go (default build/<instance>)")
	cfg, n, err := parseDiskFlags(fs, args, instance, size)
	if err != nil {
		return err
	}
	o := assemble.Options{Instance: *instance, Output: *out, Size: n, SystemdBoot: *sdboot, WorkDir: *workdir,
		CheckFile: checkProbeConfig(cfg.DHCPInterface()), Log: stdout}
	if *ts != "" {
		t, err := time.Parse(time.RFC3339, *ts)
		if err != nil {
			return fmt.Errorf("-timestamp: %w", err)
		}
		o.Timestamp = t
	}
	res, err := assemble.Build(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "build %s, kernel %s, cmdline %q\n", res.Timestamp, res.KernelRel, res.Cmdline)
	return nil
}

func runUpdate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("update", stderr)
	instance := fs.String("instance", "gokrazy/presscap", "instance directory (for the password and port)")
	img := fs.String("image", "presscap.img", "disk image built by 'image build'")
	target := fs.String("target", "", "device URL (default: https://<Hostname>:<HTTPSPort> with Update.UseTLS, else http://<Hostname>:<HTTPPort>)")
	fromHTTP := fs.String("from-http", "", "plain HTTP URL of a device that still runs an image without TLS: push this update there (the password crosses the network in clear this once), then wait for the new image at -target over HTTPS")
	pwFile := fs.String("password-file", "", "file holding the device's own password (the per-device one from its health report's device_password) instead of the instance's")
	mbr := fs.Bool("mbr", false, "also write the MBR (only needed if the partition table changed)")
	wait := fs.Duration("wait", 5*time.Minute, "how long to wait for the device to come back")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := gokconfig.Load(*instance)
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) { fmt.Fprintf(stdout, format+"\n", args...) }
	t, err := updateTarget(cfg, updateFlags{target: *target, fromHTTP: *fromHTTP, passwordFile: *pwFile}, logf)
	if err != nil {
		return err
	}
	p, err := updater.OpenImage(*img)
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Fprintf(stdout, "updating %s to build %s (root %d KiB, boot %d KiB)\n", t.BaseURL, p.Timestamp, p.RootSize>>10, p.BootSize>>10)
	if err := t.UpdateFromImage(ctx, p, *mbr, *wait, logf); err != nil {
		if errors.Is(err, updater.ErrUnauthorized) && *pwFile == "" {
			// The probe makes a per-device password on its first start;
			// gokrazy takes it from the next boot on.
			return fmt.Errorf("%w\nA probe with upload enabled that has started once uses its per-device password (/perm/gokr-pw.txt, sent as device_password in its health report) from its next boot on: put it in a file and pass -password-file (make update PASSWORD_FILE=...)", err)
		}
		return err
	}
	fmt.Fprintf(stdout, "device runs build %s\n", p.Timestamp)
	return nil
}

// updateTarget is the device's update endpoint as the instance describes
// it. With TLS the device's certificate is pinned on first use (in the
// instance's state directory) and must match from then on; the password is
// never sent over plain HTTP to a device that speaks HTTPS.
// updateFlags are image update's flags that choose where and how to reach
// the device.
type updateFlags struct {
	target, fromHTTP, passwordFile string
}

func updateTarget(cfg *gokconfig.Config, f updateFlags, logf func(string, ...any)) (*updater.Target, error) {
	if cfg.NoPassword() {
		return nil, errors.New("Update.NoPassword is set: gokrazy then serves its update API only on the device's Unix socket, so the device cannot be updated over the network")
	}
	target, fromHTTP := f.target, f.fromHTTP
	pw, err := updatePassword(cfg, f.passwordFile)
	if err != nil {
		return nil, err
	}
	var from *url.URL
	if fromHTTP != "" {
		if from, err = url.Parse(fromHTTP); err != nil || from.Scheme != "http" || from.Host == "" {
			return nil, fmt.Errorf("-from-http %q: want http://host:port", fromHTTP)
		}
		if !cfg.TLSEnabled() {
			return nil, errors.New("-from-http: the instance has no Update.UseTLS or Update.CertPEM; use -target")
		}
	}
	if target == "" {
		host := cfg.Hostname
		if cfg.Update != nil && cfg.Update.Hostname != "" {
			host = cfg.Update.Hostname
		}
		if from != nil {
			host = from.Hostname()
		}
		target = "http://" + net.JoinHostPort(host, cfg.HTTPPort())
		if cfg.TLSEnabled() {
			target = "https://" + net.JoinHostPort(host, cfg.HTTPSPort())
		}
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("-target %q: want http://host:port or https://host:port", target)
	}
	// Redirects are not followed: gokrazy's HTTP port redirects to HTTPS
	// when TLS is on, and the update must not wander off the pinned host.
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	switch {
	case cfg.TLSEnabled() && u.Scheme != "https":
		return nil, fmt.Errorf("Update.UseTLS/CertPEM: the device serves its update API over HTTPS (port %s); -target %s would send the password in clear (for a device still running an image without TLS: -from-http)", cfg.HTTPSPort(), target)
	case !cfg.TLSEnabled() && u.Scheme == "https":
		return nil, fmt.Errorf("-target %s is HTTPS, but the instance has no Update.UseTLS or Update.CertPEM, so its image serves plain HTTP", target)
	case !cfg.TLSEnabled():
		return &updater.Target{BaseURL: target, Password: pw, Client: &http.Client{CheckRedirect: noRedirect}}, nil
	}
	pin := &tlspin.Store{Path: cfg.StatePath(gokconfig.PinFile), Log: logf}
	// The image being pushed normally carries the instance's certificate:
	// when the device comes back with it, it replaces the pin.
	cert, _, err := cfg.TLSCertificate(false)
	if err != nil {
		return nil, err
	}
	if cert != nil {
		if err := pin.Expect(cert); err != nil {
			return nil, err
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = pin.TLSConfig()
	t := &updater.Target{BaseURL: target, Password: pw, Client: &http.Client{Transport: tr, CheckRedirect: noRedirect}}
	if from != nil {
		logf("pushing over plain HTTP to %s: the device runs an image without TLS; the password crosses the network in clear this once", fromHTTP)
		return &updater.Target{BaseURL: fromHTTP, Password: pw, Client: &http.Client{CheckRedirect: noRedirect}, After: t}, nil
	}
	return t, nil
}

// updatePassword is the device's own password from file, else the
// instance's.
func updatePassword(cfg *gokconfig.Config, file string) (string, error) {
	if file == "" {
		return cfg.Password()
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("-password-file: %w", err)
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return "", fmt.Errorf("-password-file %s is empty", file)
	}
	return pw, nil
}

func runInfo(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("info", stderr)
	img := fs.String("image", "presscap.img", "disk image")
	if err := fs.Parse(args); err != nil {
		return err
	}
	p, err := updater.OpenImage(*img)
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Fprintf(stdout, "build %s\nsignature %08x\ndisk GUID %s\nroot %d bytes\nboot %d bytes used\n",
		p.Timestamp, p.Layout.Signature, p.Layout.DiskGUID, p.RootSize, p.BootSize)
	for _, e := range p.Layout.Partitions {
		fmt.Fprintf(stdout, "partition %d: %s %s LBA %d..%d\n", e.Number, e.Type, e.GUID, e.Start, e.End)
	}
	// The boot FAT's top level ("file /..." lines, so that scripts
	// matching /^boot/ still find the one "boot ... bytes used" line).
	files, err := p.BootFiles()
	if err != nil {
		return err
	}
	for _, f := range files {
		if f.Dir {
			fmt.Fprintf(stdout, "file /%s/ (directory)\n", f.Path)
			continue
		}
		fmt.Fprintf(stdout, "file /%s %d bytes\n", f.Path, f.Size)
	}
	plan, err := p.EEPROM()
	if err != nil {
		return err
	}
	if plan.Ships {
		fmt.Fprintf(stdout, "EEPROM update pieeprom %s vl805 %s, recovery as %s\n", plan.Image.PieepromSHA256, plan.Image.VL805SHA256, plan.Recovery)
	} else {
		fmt.Fprintln(stdout, "EEPROM update none")
	}
	return nil
}

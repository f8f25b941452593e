// Package assemble builds a complete gokrazy disk image from an instance
// directory: it compiles the programs and a generated init, lays out the
// root squashfs, the boot FAT and a pre-formatted ext4 /perm, and writes them
// behind a GPT + hybrid MBR.
package assemble

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/presscap/presscap/image/internal/eeprom"
	"github.com/presscap/presscap/image/internal/fat"
	"github.com/presscap/presscap/image/internal/gokconfig"
	"github.com/presscap/presscap/image/internal/partition"
	"github.com/presscap/presscap/image/internal/rootfs"
)

// DefaultSize is the default disk image size: boot, two 500 MiB roots and
// about 940 MiB of /perm. The file is sparse.
const DefaultSize = 2 << 30

// CmdlinePadding follows the command line's newline in cmdline.txt and the
// loader entry: gokrazy rewrites both in place, never changing their length,
// and its test boot (/update/testboot) inserts " gokrazy.try_boot_inactive=1"
// (28 bytes) before every newline, pushing the file's tail out. The padding
// is that tail: room for the root switch and for eight test boots (gokrazy
// leaves a "gokrazy.switch_on_boot=1" behind after each).
const CmdlinePadding = 256

// BootFileText is cmdline.txt's content: the command line, the one newline
// gokrazy's test boot needs, then padding. The Pi firmware reads the first
// line (and the padding would only be whitespace if it read on).
func BootFileText(cmdline string) string {
	return cmdline + "\n" + strings.Repeat(" ", CmdlinePadding)
}

// LoaderEntry is the systemd-boot entry for UEFI instances. Its first lines
// end in CR, which systemd-boot takes as a line end and gokrazy's edits
// leave alone: the test boot's insertion before every LF would otherwise
// turn "linux /vmlinuz" into a path that does not exist. The options line
// ends in the one LF, followed by padding (a blank line to systemd-boot).
func LoaderEntry(cmdline string) string {
	return "title gokrazy\rlinux /vmlinuz\roptions " + BootFileText(cmdline)
}

// Options control one build.
type Options struct {
	// Instance is the instance directory holding config.json.
	Instance string
	// Output is the disk image to write (replaced).
	Output string
	// Size is the disk size in bytes (DefaultSize if 0).
	Size int64
	// Timestamp is the build timestamp init reports (now if zero).
	Timestamp time.Time
	// RepoDir is the Go module to build the programs in (the module
	// containing the working directory if empty).
	RepoDir string
	// WorkDir keeps the compiled programs and the generated init
	// (RepoDir/build/<instance> if empty). It must be inside RepoDir so
	// that the init package uses RepoDir's go.mod.
	WorkDir string
	// SystemdBoot is systemd-boot for the instance's architecture
	// (systemd-bootaa64.efi or systemd-bootx64.efi), needed by instances
	// without Raspberry Pi firmware (UEFI machines: QEMU virt, x86-64 VMs).
	SystemdBoot string
	// CheckFile validates a file destined for the root file system before
	// anything is written; a non-nil error fails the build. It may return
	// directories the root file system must hold (mount points: the root
	// is read-only on the device).
	CheckFile func(dst string, data []byte) (dirs []string, err error)
	// Log receives progress lines (discarded if nil).
	Log io.Writer
}

// Result describes what was written.
type Result struct {
	Layout      partition.Layout
	Timestamp   string
	RootBytes   int64 // squashfs size
	BootBytes   int64 // used part of the boot FAT
	Cmdline     string
	KernelRel   string
	BuildTime   time.Duration // compiling
	AssembleDur time.Duration // everything after compiling
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// Build writes the image described by o.
func Build(ctx context.Context, o Options) (*Result, error) {
	if o.Size == 0 {
		o.Size = DefaultSize
	}
	if o.RepoDir == "" {
		root, err := moduleRoot(ctx)
		if err != nil {
			return nil, err
		}
		o.RepoDir = root
	}
	if o.Timestamp.IsZero() {
		o.Timestamp = time.Now()
	}
	o.Timestamp = o.Timestamp.UTC().Truncate(time.Second)
	cfg, err := gokconfig.Load(o.Instance)
	if err != nil {
		return nil, err
	}
	if o.WorkDir == "" {
		o.WorkDir = filepath.Join(o.RepoDir, "build", filepath.Base(filepath.Clean(o.Instance)))
	}
	if o.WorkDir, err = filepath.Abs(o.WorkDir); err != nil {
		return nil, err
	}
	if o.RepoDir, err = filepath.Abs(o.RepoDir); err != nil {
		return nil, err
	}
	arch, err := cfg.GOARCH()
	if err != nil {
		return nil, err
	}
	sig := partition.Signature(cfg.Hostname)
	layout, err := partition.NewLayout(sig, o.Size)
	if err != nil {
		return nil, err
	}
	if layout, err = layout.ForArch(arch); err != nil {
		return nil, err
	}
	res := &Result{Layout: layout, Timestamp: o.Timestamp.Format(time.RFC3339)}

	// Everything the root file system gets from the instance is read and
	// checked before anything is compiled or written.
	extra, dirs, err := extraFiles(cfg, o.CheckFile)
	if err != nil {
		return nil, err
	}
	web, err := webFiles(cfg)
	if err != nil {
		return nil, err
	}

	kernelDir, err := moduleDir(ctx, o.RepoDir, cfg.KernelPackageOrDefault())
	if err != nil {
		return nil, err
	}
	firmwarePkg := cfg.FirmwarePackageOrDefault()
	var firmwareDir string
	if firmwarePkg != "" {
		if firmwareDir, err = moduleDir(ctx, o.RepoDir, firmwarePkg); err != nil {
			return nil, err
		}
	} else {
		u := uefiArch[arch]
		if o.SystemdBoot == "" {
			return nil, fmt.Errorf("instance %s has no FirmwarePackage, so it boots through UEFI: pass the %s from Debian's systemd-boot-efi:%s (make fetches it)", o.Instance, u.loader, arch)
		}
		if err := checkPEMachine(o.SystemdBoot, arch); err != nil {
			return nil, fmt.Errorf("systemd-boot: %w", err)
		}
	}

	var eep *eeprom.Update
	if pkg := cfg.EEPROMPackageOrDefault(); pkg != "" {
		dir, err := moduleDir(ctx, o.RepoDir, pkg)
		if err != nil {
			return nil, fmt.Errorf("EEPROMPackage %q: %w", pkg, err)
		}
		if eep, err = eeprom.Load(dir); err != nil {
			return nil, fmt.Errorf("EEPROMPackage %q: %w", pkg, err)
		}
	}

	// Compile.
	t0 := time.Now()
	binDir := filepath.Join(o.WorkDir, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return nil, err
	}
	if err := buildPrograms(ctx, o, cfg, binDir); err != nil {
		return nil, err
	}
	if err := buildInit(ctx, o, cfg, res.Timestamp, binDir); err != nil {
		return nil, err
	}
	res.BuildTime = time.Since(t0)
	o.logf("compiled in %s", res.BuildTime.Round(time.Millisecond))
	t1 := time.Now()

	// Root file system.
	tree := rootfs.NewTree()
	rel, err := rootTree(tree, cfg, binDir, kernelDir, web, extra, dirs)
	if err != nil {
		return nil, err
	}
	res.KernelRel = rel
	sqPath := filepath.Join(o.WorkDir, "root.squashfs")
	res.RootBytes, err = tree.WriteSquashfs(sqPath, o.Timestamp)
	if err != nil {
		return nil, err
	}
	o.logf("root squashfs: %d KiB after %s", res.RootBytes>>10, time.Since(t1).Round(time.Millisecond))
	rootPart := layout.Partition(partition.RootA)
	if res.RootBytes > rootPart.Size() {
		return nil, fmt.Errorf("root file system is %d bytes, the root partition holds %d", res.RootBytes, rootPart.Size())
	}

	// Boot file system.
	res.Cmdline = Cmdline(cfg, sig)
	boot, err := bootFS(cfg, arch, kernelDir, firmwareDir, o.SystemdBoot, res.Cmdline)
	if err != nil {
		return nil, err
	}
	if eep != nil {
		for _, f := range eep.BootFiles() {
			if err := boot.AddFile(f.Name, f.Data); err != nil {
				return nil, fmt.Errorf("EEPROMPackage: %w", err)
			}
		}
		o.logf("EEPROM update %s, %s, %s", eep.PieepromName, eep.VL805Name, eeprom.Recovery)
	}

	// The disk.
	tmp := o.Output + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp)
	defer f.Close()
	if err := f.Truncate(o.Size); err != nil {
		return nil, err
	}
	if err := layout.Write(f); err != nil {
		return nil, err
	}
	bootPart := layout.Partition(partition.Boot)
	res.BootBytes, err = boot.Write(io.NewOffsetWriter(f, bootPart.Offset()), fat.Options{
		TotalSectors:  uint32(bootPart.Sectors()),
		HiddenSectors: uint32(bootPart.Start),
		VolumeID:      sig,
		ModTime:       o.Timestamp,
	})
	if err != nil {
		return nil, err
	}
	if err := copyInto(f, rootPart.Offset(), sqPath); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	o.logf("boot FAT and root written after %s", time.Since(t1).Round(time.Millisecond))
	perm := layout.Partition(partition.Perm)
	if err := mkfsPerm(ctx, tmp, perm, sig); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, o.Output); err != nil {
		return nil, err
	}
	res.AssembleDur = time.Since(t1)
	o.logf("wrote %s (%d MiB, root %d KiB, boot %d KiB) in %s", o.Output, o.Size>>20, res.RootBytes>>10, res.BootBytes>>10, res.AssembleDur.Round(time.Millisecond))
	return res, nil
}

// Cmdline returns the kernel command line for the first root partition.
func Cmdline(cfg *gokconfig.Config, sig uint32) string {
	parts := []string{"console=tty1"}
	if sc := cfg.SerialConsoleOrDefault(); sc != "disabled" {
		parts = append(parts, "console="+sc)
	}
	parts = append(parts, partition.RootCmdline(sig), "init=/gokrazy/init", "rootwait", "panic=10", "oops=panic")
	return strings.Join(parts, " ")
}

type extraFile struct {
	data []byte
	mode os.FileMode
}

func extraFiles(cfg *gokconfig.Config, check func(string, []byte) ([]string, error)) (map[string]extraFile, []string, error) {
	out := map[string]extraFile{}
	var dirs []string
	pkgs := make([]string, 0, len(cfg.PackageConfig))
	for p := range cfg.PackageConfig {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	add := func(pkg, dst string, data []byte, mode os.FileMode) error {
		if _, dup := out[dst]; dup {
			return fmt.Errorf("PackageConfig[%q]: %s is provided twice", pkg, dst)
		}
		if check != nil {
			d, err := check(dst, data)
			if err != nil {
				return fmt.Errorf("PackageConfig[%q]: %s: %w", pkg, dst, err)
			}
			dirs = append(dirs, d...)
		}
		out[dst] = extraFile{data, mode}
		return nil
	}
	for _, pkg := range pkgs {
		pc := cfg.PackageConfig[pkg]
		for dst, src := range pc.ExtraFilePaths {
			p := cfg.Resolve(src)
			st, err := os.Stat(p)
			if err != nil {
				return nil, nil, err
			}
			if st.IsDir() {
				return nil, nil, fmt.Errorf("PackageConfig[%q].ExtraFilePaths[%q]: %s is a directory", pkg, dst, p)
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, nil, err
			}
			mode := rootfs.FileMode
			if st.Mode()&0o111 != 0 {
				mode = rootfs.ProgramMode
			}
			if err := add(pkg, dst, data, mode); err != nil {
				return nil, nil, err
			}
		}
		for dst, content := range pc.ExtraFileContents {
			if err := add(pkg, dst, []byte(content), rootfs.FileMode); err != nil {
				return nil, nil, err
			}
		}
	}
	return out, dirs, nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, goTool(), "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module: run from the presscap repository")
	}
	return filepath.Dir(mod), nil
}

func moduleDir(ctx context.Context, repo, mod string) (string, error) {
	cmd := exec.CommandContext(ctx, goTool(), "list", "-m", "-f", "{{.Dir}}", mod)
	cmd.Dir = repo
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating module %s: %v: %s", mod, err, stderr.String())
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		// Listed but not downloaded yet.
		dl := exec.CommandContext(ctx, goTool(), "mod", "download", mod)
		dl.Dir = repo
		if o, err := dl.CombinedOutput(); err != nil {
			return "", fmt.Errorf("downloading module %s: %v: %s", mod, err, o)
		}
		return moduleDir(ctx, repo, mod)
	}
	return dir, nil
}

func goBuild(ctx context.Context, o Options, arch string, args ...string) error {
	cmd := exec.CommandContext(ctx, goTool(), append([]string{"build"}, args...)...)
	cmd.Dir = o.RepoDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func buildPrograms(ctx context.Context, o Options, cfg *gokconfig.Config, binDir string) error {
	arch, err := cfg.GOARCH()
	if err != nil {
		return err
	}
	// Packages without their own build flags are compiled together.
	var plain []string
	for _, pkg := range append(cfg.GokrazyPackagesOrDefault(), cfg.Packages...) {
		pc := cfg.PackageConfig[pkg]
		if len(pc.GoBuildFlags) == 0 && len(pc.GoBuildTags) == 0 {
			plain = append(plain, pkg)
			continue
		}
		tags := append([]string{"gokrazy"}, pc.GoBuildTags...)
		args := append([]string{"-trimpath", "-tags", strings.Join(tags, ",")}, pc.GoBuildFlags...)
		args = append(args, "-o", filepath.Join(binDir, gokconfig.Basename(pkg)), pkg)
		o.logf("go build %s", pkg)
		if err := goBuild(ctx, o, arch, args...); err != nil {
			return err
		}
	}
	if len(plain) > 0 {
		o.logf("go build %s", strings.Join(plain, " "))
		args := append([]string{"-trimpath", "-tags", "gokrazy", "-o", binDir + string(filepath.Separator)}, plain...)
		if err := goBuild(ctx, o, arch, args...); err != nil {
			return err
		}
	}
	return nil
}

// InstanceName is the instance directory's name ("presscap"): what a
// release bundle's manifest names as its target and the device learns as
// $PRESSCAP_INSTANCE.
func InstanceName(cfg *gokconfig.Config) string {
	return filepath.Base(cfg.Dir)
}

// InitSource returns the generated init program: gokrazy.Boot, one service
// per program with its flags and environment compiled in, and
// gokrazy.SuperviseServices.
func InitSource(cfg *gokconfig.Config, timestamp string) string {
	var b strings.Builder
	b.WriteString(`// Code generated by presscap's image assembler (go run ./image). DO NOT EDIT.

package main

import (
	"log"
	"os"
	"os/exec"

	"github.com/gokrazy/gokrazy"
)

const buildTimestamp = ` + strconv.Quote(timestamp) + `

func main() {
	if err := gokrazy.Boot(buildTimestamp); err != nil {
		log.Fatal(err)
	}
	// Every service learns the image's build (presscap's health report),
	// instance (which fleet releases are its own) and DHCP interface.
	os.Setenv("PRESSCAP_IMAGE_BUILD", buildTimestamp)
	os.Setenv("PRESSCAP_INSTANCE", ` + strconv.Quote(InstanceName(cfg)) + `)
	// The probe refuses a network mode that would take the DHCP client's
	// interface away (probe/config.DHCPEnv; empty: no client).
	os.Setenv("PRESSCAP_DHCP_INTERFACE", ` + strconv.Quote(cfg.DHCPInterface()) + `)
	services := []*gokrazy.Service{
`)
	svc := func(path, pkg string) {
		pc := cfg.PackageConfig[pkg]
		ctor := "NewService"
		switch {
		case pc.DontStart:
			ctor = "NewStoppedService"
		case pc.WaitForClock:
			ctor = "NewWaitForClockService"
		}
		args := []string{strconv.Quote(path)}
		for _, a := range pc.CommandLineFlags {
			args = append(args, strconv.Quote(a))
		}
		env := "os.Environ()"
		if len(pc.Environment) > 0 {
			q := make([]string, len(pc.Environment))
			for i, e := range pc.Environment {
				q[i] = strconv.Quote(e)
			}
			env = "append(os.Environ(), " + strings.Join(q, ", ") + ")"
		}
		fmt.Fprintf(&b, "\t\tgokrazy.%s(&exec.Cmd{Path: %s, Args: []string{%s}, Env: %s}),\n",
			ctor, strconv.Quote(path), strings.Join(args, ", "), env)
	}
	for _, pkg := range cfg.GokrazyPackagesOrDefault() {
		svc("/gokrazy/"+gokconfig.Basename(pkg), pkg)
	}
	for _, pkg := range cfg.Packages {
		svc("/user/"+gokconfig.Basename(pkg), pkg)
	}
	b.WriteString(`	}
	if err := gokrazy.SuperviseServices(services); err != nil {
		log.Fatal(err)
	}
	select {}
}
`)
	return b.String()
}

func buildInit(ctx context.Context, o Options, cfg *gokconfig.Config, timestamp, binDir string) error {
	// A directory whose name starts with "_" is skipped by ./... patterns,
	// so go vet and go test never see the generated program.
	src := filepath.Join(o.WorkDir, "_init")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(InitSource(cfg, timestamp)), 0o644); err != nil {
		return err
	}
	rel, err := filepath.Rel(o.RepoDir, src)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("work directory %s must be inside %s", o.WorkDir, o.RepoDir)
	}
	arch, err := cfg.GOARCH()
	if err != nil {
		return err
	}
	o.logf("go build init (GOARCH=%s)", arch)
	return goBuild(ctx, o, arch, "-trimpath", "-tags", "gokrazy,netgo,osusergo", "-o", filepath.Join(binDir, "init"), "./"+filepath.ToSlash(rel))
}

// rootFile is one file of the root file system.
type rootFile struct {
	path string
	data []byte
	mode fs.FileMode
}

// webFiles are what gokrazy's web interface reads from the root: the update
// password (none with Update.NoPassword; gokrazy then listens only on its
// Unix socket) and, for HTTPS, the certificate and key it loads from
// /etc/ssl/gokrazy-web.pem and /etc/ssl/gokrazy-web.key.pem at boot.
func webFiles(cfg *gokconfig.Config) ([]rootFile, error) {
	var files []rootFile
	if !cfg.NoPassword() {
		pw, err := cfg.Password()
		if err != nil {
			return nil, err
		}
		files = append(files, rootFile{"/etc/gokr-pw.txt", []byte(pw), rootfs.SecretMode})
	}
	cert, key, err := cfg.TLSCertificate(true)
	if err != nil {
		return nil, err
	}
	if cert != nil {
		files = append(files,
			rootFile{"/etc/ssl/gokrazy-web.pem", cert, rootfs.FileMode},
			rootFile{"/etc/ssl/gokrazy-web.key.pem", key, rootfs.SecretMode})
	}
	return files, nil
}

func rootTree(t *rootfs.Tree, cfg *gokconfig.Config, binDir, kernelDir string, web []rootFile, extra map[string]extraFile, dirs []string) (string, error) {
	steps := []func() error{
		func() error { return t.HostFile("/gokrazy/init", filepath.Join(binDir, "init"), rootfs.ProgramMode) },
	}
	for _, pkg := range cfg.GokrazyPackagesOrDefault() {
		base := gokconfig.Basename(pkg)
		steps = append(steps, func() error {
			return t.HostFile("/gokrazy/"+base, filepath.Join(binDir, base), rootfs.ProgramMode)
		})
	}
	for _, pkg := range cfg.Packages {
		base := gokconfig.Basename(pkg)
		steps = append(steps, func() error {
			return t.HostFile("/user/"+base, filepath.Join(binDir, base), rootfs.ProgramMode)
		})
	}
	for _, d := range append([]string{"/dev", "/proc", "/sys", "/tmp", "/perm", "/run", "/mnt"}, dirs...) {
		steps = append(steps, func() error { return t.Dir(d) })
	}
	ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		return "", fmt.Errorf("CA bundle for /etc/ssl/ca-bundle.pem: %w (install the Debian package ca-certificates)", err)
	}
	steps = append(steps,
		func() error { return t.File("/etc/hostname", []byte(cfg.Hostname), rootfs.FileMode) },
		func() error {
			return t.File("/etc/hosts", []byte("127.0.0.1 localhost\n::1 localhost\n127.0.1.1 "+cfg.Hostname+"\n"), rootfs.FileMode)
		},
		func() error { return t.File("/etc/http-port.txt", []byte(cfg.HTTPPort()), rootfs.FileMode) },
		func() error { return t.File("/etc/https-port.txt", []byte(cfg.HTTPSPort()), rootfs.FileMode) },
		func() error { return t.File("/etc/localtime", UTCZoneinfo(), rootfs.FileMode) },
		func() error { return t.File("/etc/ssl/ca-bundle.pem", ca, rootfs.FileMode) },
		func() error { return t.Symlink("/etc/resolv.conf", "/tmp/resolv.conf") },
		func() error { return t.Symlink("/var", "/perm/var") },
	)
	for _, f := range web {
		steps = append(steps, func() error { return t.File(f.path, f.data, f.mode) })
	}
	if len(cfg.MountDevices) > 0 {
		b, err := json.Marshal(cfg.MountDevices)
		if err != nil {
			return "", err
		}
		steps = append(steps, func() error { return t.File("/etc/gokrazy/mountdevices.json", b, rootfs.FileMode) })
		for _, m := range cfg.MountDevices {
			if !strings.HasPrefix(m.Target, "/perm/") {
				steps = append(steps, func() error { return t.Dir(m.Target) })
			}
		}
	}
	dsts := make([]string, 0, len(extra))
	for d := range extra {
		dsts = append(dsts, d)
	}
	sort.Strings(dsts)
	for _, d := range dsts {
		steps = append(steps, func() error { return t.File(d, extra[d].data, extra[d].mode) })
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return "", err
		}
	}
	mods := filepath.Join(kernelDir, "lib", "modules")
	rels, err := os.ReadDir(mods)
	if err != nil {
		return "", fmt.Errorf("kernel modules: %w", err)
	}
	var release string
	for _, r := range rels {
		if r.IsDir() {
			release = r.Name()
			if err := t.HostDir("/lib/modules/"+r.Name(), filepath.Join(mods, r.Name())); err != nil {
				return "", err
			}
		}
	}
	return release, nil
}

func bootFS(cfg *gokconfig.Config, arch, kernelDir, firmwareDir, systemdBoot, cmdline string) (*fat.Builder, error) {
	b := fat.NewBuilder()
	addHost := func(dst, src string) error {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		return b.AddFile(dst, data)
	}
	if err := addHost("vmlinuz", filepath.Join(kernelDir, "vmlinuz")); err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	if err := b.AddFile("cmdline.txt", []byte(BootFileText(cmdline))); err != nil {
		return nil, err
	}
	if firmwareDir != "" {
		// Raspberry Pi: firmware, device trees, overlays, config.txt.
		for _, glob := range []string{"*.bin", "*.dat", "*.elf"} {
			m, _ := filepath.Glob(filepath.Join(firmwareDir, glob))
			for _, p := range m {
				if err := addHost(filepath.Base(p), p); err != nil {
					return nil, err
				}
			}
		}
		dtbs, _ := filepath.Glob(filepath.Join(kernelDir, "*.dtb"))
		if len(dtbs) == 0 {
			return nil, fmt.Errorf("kernel package %s has no device trees for the Raspberry Pi", kernelDir)
		}
		for _, p := range dtbs {
			if err := addHost(filepath.Base(p), p); err != nil {
				return nil, err
			}
		}
		ovl, _ := filepath.Glob(filepath.Join(kernelDir, "overlays", "*"))
		for _, p := range ovl {
			if err := addHost("overlays/"+filepath.Base(p), p); err != nil {
				return nil, err
			}
		}
		ct, err := ConfigTxt(cfg, kernelDir)
		if err != nil {
			return nil, err
		}
		if err := b.AddFile("config.txt", ct); err != nil {
			return nil, err
		}
	} else {
		// UEFI: systemd-boot as the removable-media default loader, one entry.
		if err := addHost(uefiArch[arch].removable, systemdBoot); err != nil {
			return nil, err
		}
		if err := b.AddFile("loader/entries/gokrazy.conf", []byte(LoaderEntry(cmdline))); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// uefiArch is, per GOARCH, the UEFI removable-media loader path firmware
// boots without any boot entry, the PE machine type it must have, and
// systemd-boot's name for it in Debian's systemd-boot-efi package.
var uefiArch = map[string]struct {
	removable string
	machine   uint16
	loader    string
}{
	"arm64": {"EFI/BOOT/BOOTAA64.EFI", 0xaa64, "systemd-bootaa64.efi"},
	"amd64": {"EFI/BOOT/BOOTX64.EFI", 0x8664, "systemd-bootx64.efi"},
}

// checkPEMachine refuses a loader built for another architecture: the
// firmware would skip it and the VM would stop at its boot menu.
func checkPEMachine(path, arch string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	u := uefiArch[arch]
	if len(b) < 0x40 || b[0] != 'M' || b[1] != 'Z' {
		return fmt.Errorf("%s is not a PE/COFF (EFI) executable", path)
	}
	pe := int(binary.LittleEndian.Uint32(b[0x3c:]))
	if pe+6 > len(b) || string(b[pe:pe+4]) != "PE\x00\x00" {
		return fmt.Errorf("%s: no PE header at byte %d", path, pe)
	}
	if m := binary.LittleEndian.Uint16(b[pe+4:]); m != u.machine {
		return fmt.Errorf("%s is built for PE machine %#04x, GOARCH %s needs %#04x (%s)", path, m, arch, u.machine, u.loader)
	}
	return nil
}

// ConfigTxt returns the kernel package's config.txt with the UART enabled
// when a serial console is configured, plus BootloaderExtraLines.
func ConfigTxt(cfg *gokconfig.Config, kernelDir string) ([]byte, error) {
	base, err := os.ReadFile(filepath.Join(kernelDir, "config.txt"))
	if err != nil {
		return nil, fmt.Errorf("config.txt: %w", err)
	}
	s := string(base)
	if cfg.SerialConsoleOrDefault() != "disabled" {
		s = strings.ReplaceAll(s, "enable_uart=0", "enable_uart=1")
	}
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	for _, l := range cfg.BootloaderExtraLines {
		s += l + "\n"
	}
	return []byte(s), nil
}

// UTCZoneinfo returns a TZif file for UTC, so /etc/localtime does not
// depend on the build machine's tzdata.
func UTCZoneinfo() []byte {
	var b bytes.Buffer
	block := func(version byte) {
		b.WriteString("TZif")
		b.WriteByte(version)
		b.Write(make([]byte, 15))
		// isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
		for _, n := range []uint32{0, 0, 0, 0, 1, 4} {
			b.Write([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
		}
		b.Write([]byte{0, 0, 0, 0, 0, 0}) // utoff 0, isdst 0, desigidx 0
		b.WriteString("UTC\x00")
	}
	block('2')
	block('2')
	b.WriteString("\nUTC0\n")
	return b.Bytes()
}

func copyInto(dst *os.File, off int64, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(io.NewOffsetWriter(dst, off), f); err != nil {
		return fmt.Errorf("copying %s into the image: %w", src, err)
	}
	return nil
}

// RingDisk writes the VM edition's second disk to path: size bytes
// (sparse), an MBR with one partition from 1 MiB, formatted ext4 with the
// probe's storage label, so the probe finds it as it finds a USB disk.
// gokrazy has no mkfs, so the disk ships formatted; the ring survives
// replacing the system disk.
func RingDisk(ctx context.Context, path string, size int64, label string) error {
	if size%partition.SectorSize != 0 {
		return fmt.Errorf("ring disk size %d is not a multiple of %d bytes", size, partition.SectorSize)
	}
	if label == "" || len(label) > 16 {
		return fmt.Errorf("ring disk label %q: ext4 labels are 1 to 16 bytes", label)
	}
	mbr, err := partition.DataDiskMBR(uint64(size/partition.SectorSize), partition.Signature(label))
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	if _, err := f.WriteAt(mbr, 0); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	off := int64(partition.DataDiskStart) * partition.SectorSize
	if err := mkfsExt4(ctx, tmp, off, size-off, label, ""); err != nil {
		return fmt.Errorf("ring disk: %w", err)
	}
	return os.Rename(tmp, path)
}

// mkfsExt4 formats size bytes of img from byte off with label; a non-empty
// uuid also fixes the file system's UUID and directory hash seed, so a
// rebuild makes the same bytes.
func mkfsExt4(ctx context.Context, img string, off, size int64, label, uuid string) error {
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/mkfs.ext4"); e != nil {
			return fmt.Errorf("mkfs.ext4 not found: install the Debian package e2fsprogs")
		}
		mkfs = "/usr/sbin/mkfs.ext4"
	}
	args := []string{"-q", "-F", "-L", label}
	ext := fmt.Sprintf("offset=%d,nodiscard,root_owner=0:0", off)
	if uuid != "" {
		args = append(args, "-U", uuid)
		ext += ",hash_seed=" + uuid
	}
	args = append(args, "-E", ext, img, strconv.FormatInt(size>>10, 10)+"k")
	if out, err := exec.CommandContext(ctx, mkfs, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4: %v\n%s", err, out)
	}
	return nil
}

func mkfsPerm(ctx context.Context, img string, p partition.Entry, sig uint32) error {
	if err := mkfsExt4(ctx, img, p.Offset(), p.Size(), "perm", partition.PartitionGUID(sig, partition.Perm)); err != nil {
		return fmt.Errorf("/perm: %w", err)
	}
	return nil
}

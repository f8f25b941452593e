package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/image/internal/eeprom"
	"github.com/presscap/presscap/image/internal/fat"
	"github.com/presscap/presscap/image/internal/partition"
	"github.com/presscap/presscap/image/internal/updater"
	"github.com/presscap/presscap/internal/release"
)

// trustKey makes the copied instance's probe configuration list pub in
// release.public_keys (as a provider does before the first release).
func trustKey(t *testing.T, inst, pub string) {
	t.Helper()
	src := probeConfigSource(t, inst)
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var pc map[string]any
	if err := json.Unmarshal(b, &pc); err != nil {
		t.Fatal(err)
	}
	pc["release"] = map[string]any{"public_keys": []string{pub}}
	nb, err := json.Marshal(pc)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "probe.json")
	if err := os.WriteFile(dst, nb, 0o644); err != nil {
		t.Fatal(err)
	}
	// The instance names its file relative to itself or not: set the
	// entry, not the text.
	cb, err := os.ReadFile(filepath.Join(inst, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var gc map[string]any
	if err := json.Unmarshal(cb, &gc); err != nil {
		t.Fatal(err)
	}
	gc["PackageConfig"].(map[string]any)["github.com/presscap/presscap/probe"].(map[string]any)["ExtraFilePaths"].(map[string]any)["/etc/presscap/config.json"] = dst
	if cb, err = json.MarshalIndent(gc, "", "    "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(inst, "config.json"), cb, 0o644); err != nil {
		t.Fatal(err)
	}
}

func runRel(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"release"}, args...), &out, io.Discard)
	return out.String(), err
}

// readBundle verifies a bundle directory as a probe would and checks every
// part file against the manifest.
func readBundle(t *testing.T, dir string, pub ed25519.PublicKey) *release.Manifest {
	t.Helper()
	mb, err := os.ReadFile(filepath.Join(dir, release.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := os.ReadFile(filepath.Join(dir, release.SignatureFile))
	if err != nil {
		t.Fatal(err)
	}
	m, err := release.Verify(mb, sig, []ed25519.PublicKey{pub})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Parts {
		f, err := os.Open(filepath.Join(dir, p.File))
		if err != nil {
			t.Fatal(err)
		}
		err = release.VerifyPart(p, f)
		f.Close()
		if err != nil {
			t.Errorf("bundle part: %v", err)
		}
	}
	return m
}

// checkRelease writes bundles of the Pi image built by TestPiImageStructure.
func checkRelease(t *testing.T, b built) {
	priv, pubStr, err := release.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := release.ParsePublicKey(pubStr)
	keyFile := filepath.Join(t.TempDir(), "release.key")
	if err := os.WriteFile(keyFile, []byte(priv), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envReleaseKey, "")
	t.Setenv(envReleaseKeyFile, "")
	common := []string{"-instance", b.instance, "-image", b.img}
	first := filepath.Join(t.TempDir(), "first")

	if _, err := runRel(t, append(common, "-o", first, "-approve-boot-change")...); err == nil || !strings.Contains(err.Error(), envReleaseKey) {
		t.Fatalf("release without a key: %v, want an error naming $%s", err, envReleaseKey)
	}
	if _, err := runRel(t, append(common, "-o", first, "-approve-boot-change", "-key", keyFile)...); err == nil ||
		!strings.Contains(err.Error(), "release.public_keys") || !strings.Contains(err.Error(), pubStr) {
		t.Fatalf("release with a key the probes do not trust: %v", err)
	}
	trustKey(t, b.instance, pubStr)
	if _, err := runRel(t, append(common, "-o", first, "-key", keyFile)...); err == nil || !strings.Contains(err.Error(), "-previous") {
		t.Fatalf("first release without -previous or -approve-boot-change: %v", err)
	}
	out, err := runRel(t, append(common, "-o", first, "-approve-boot-change", "-urgent", "-key", keyFile)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "rollback_safe false, urgent true") {
		t.Errorf("release output: %s", out)
	}
	m := readBundle(t, first, pub)
	if m.Version != b.ts.Format(time.RFC3339) || m.Instance != "presscap" || m.RollbackSafe || !m.BootChangeApproved || !m.Urgent {
		t.Errorf("manifest %+v", m)
	}
	if err := release.Check(m, "presscap", "2026-11-01T00:00:00Z"); err != nil {
		t.Errorf("the fleet would refuse the first release: %v", err)
	}

	// The parts are what make update pushes: the image's squashfs, its boot
	// FAT, and the variant for a Pi 4 that already runs the EEPROM.
	img, err := updater.OpenImage(b.img)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	plan, err := img.EEPROM()
	if err != nil {
		t.Fatal(err)
	}
	if m.EEPROM == nil || m.EEPROM.PieepromSHA256 != plan.Image.PieepromSHA256 {
		t.Errorf("manifest eeprom %+v, the image ships %+v", m.EEPROM, plan.Image)
	}
	pl := img.Payload(false)
	for name, r := range map[string]io.Reader{release.PartRoot: pl.Root, release.PartBoot: pl.Boot} {
		want, _ := io.ReadAll(r)
		p, ok := m.Part(name)
		if !ok {
			t.Fatalf("no part %s", name)
		}
		got, err := os.ReadFile(filepath.Join(first, p.File))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("part %s: %d bytes differ from the image's %d", name, len(got), len(want))
		}
	}
	if _, ok := m.Part(release.PartMBR); ok {
		t.Error("bundle ships the MBR without -mbr")
	}
	for part, want := range map[string]string{release.PartBoot: eeprom.Recovery, release.PartBootEEPROMDone: eeprom.RecoveryDone} {
		p, _ := m.Part(part)
		f, err := os.Open(filepath.Join(first, p.File))
		if err != nil {
			t.Fatal(err)
		}
		fs, err := fat.Open(f)
		if err != nil {
			t.Fatalf("part %s: %v", part, err)
		}
		if _, err := fs.Stat(want); err != nil {
			t.Errorf("part %s lacks %s: %v", part, want, err)
		}
		f.Close()
	}

	// Same boot files as the previous release: rollback safe without
	// approval.
	second := filepath.Join(t.TempDir(), "second")
	t.Setenv(envReleaseKey, priv)
	if _, err := runRel(t, append(common, "-o", second, "-previous", first, "-mbr")...); err != nil {
		t.Fatal(err)
	}
	m2 := readBundle(t, second, pub)
	if !m2.RollbackSafe || m2.BootChangeApproved || m2.Urgent {
		t.Errorf("second manifest %+v", m2)
	}
	if p, ok := m2.Part(release.PartMBR); !ok || p.Size != partition.SectorSize {
		t.Errorf("-mbr: part %+v", p)
	}

	// A previous release with another cmdline.txt: the boot partition
	// changes, so the release is refused unless approved.
	mb, _ := os.ReadFile(filepath.Join(first, release.ManifestFile))
	var pm release.Manifest
	if err := json.Unmarshal(mb, &pm); err != nil {
		t.Fatal(err)
	}
	pm.BootFiles["cmdline.txt"] = strings.Repeat("0", 64)
	mb, _ = json.Marshal(pm)
	if err := os.WriteFile(filepath.Join(first, release.ManifestFile), mb, 0o644); err != nil {
		t.Fatal(err)
	}
	third := filepath.Join(t.TempDir(), "third")
	if _, err := runRel(t, append(common, "-o", third, "-previous", first)...); err == nil || !strings.Contains(err.Error(), "cmdline.txt") {
		t.Fatalf("boot change without approval: %v, want a refusal naming cmdline.txt", err)
	}
	if _, err := os.Stat(filepath.Join(third, release.SignatureFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused release left a signature: %v", err)
	}
	if _, err := runRel(t, append(common, "-o", third, "-previous", first, "-approve-boot-change")...); err != nil {
		t.Fatal(err)
	}
	if m3 := readBundle(t, third, pub); m3.RollbackSafe || !m3.BootChangeApproved {
		t.Errorf("approved boot change: %+v", m3)
	}
}

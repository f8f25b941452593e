package main

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/presscap/presscap/image/internal/assemble"
	"github.com/presscap/presscap/image/internal/gokconfig"
	"github.com/presscap/presscap/image/internal/updater"
	"github.com/presscap/presscap/internal/release"
	"github.com/presscap/presscap/internal/safefile"
)

// Environment variables holding the release signing key (its base64 seed)
// or the path of its file, for CI runners that keep it as a secret.
const (
	envReleaseKey     = "PRESSCAP_RELEASE_KEY"
	envReleaseKeyFile = "PRESSCAP_RELEASE_KEY_FILE"
)

// runReleaseKey writes a new signing key and prints its public key.
func runReleaseKey(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("release-key", stderr)
	out := fs.String("o", "", "signing key file to create (keep it outside the repository)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("release-key: -o is required")
	}
	priv, pub, err := release.NewKey()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(priv); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s; add its public key to the probe configuration's release.public_keys:\n%s\n", *out, pub)
	return nil
}

// signingKey reads the key from -key, else $PRESSCAP_RELEASE_KEY, else the
// file $PRESSCAP_RELEASE_KEY_FILE names.
func signingKey(path string) (ed25519.PrivateKey, error) {
	if path == "" {
		if s := os.Getenv(envReleaseKey); s != "" {
			k, err := release.ParsePrivateKey(s)
			if err != nil {
				return nil, fmt.Errorf("$%s: %w", envReleaseKey, err)
			}
			return k, nil
		}
		path = os.Getenv(envReleaseKeyFile)
	}
	if path == "" {
		return nil, fmt.Errorf("no signing key: pass -key, or set $%s or $%s (make one with: go run ./image release-key -o FILE)", envReleaseKey, envReleaseKeyFile)
	}
	b, err := safefile.ReadFile(path, 4096)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	k, err := release.ParsePrivateKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// runRelease writes an image's update bundle (internal/release) into a
// directory the provider uploads to <remote_dir>/fleet/release/<channel>/.
func runRelease(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("release", stderr)
	instance := fs.String("instance", "gokrazy/presscap", "instance directory the image was built from")
	img := fs.String("image", "presscap.img", "disk image built by 'image build'")
	out := fs.String("o", "", "bundle directory to write (default build/release/<instance>)")
	keyPath := fs.String("key", "", "signing key file (default $"+envReleaseKey+" or the file $"+envReleaseKeyFile+" names)")
	prev := fs.String("previous", "", "bundle directory of the release the fleet runs: rollback_safe is true only when the boot files are the same")
	approve := fs.Bool("approve-boot-change", false, "release a bundle that changes the boot partition (no rollback to the previous root) anyway")
	urgent := fs.Bool("urgent", false, "probes install it outside release.window")
	mbr := fs.Bool("mbr", false, "also ship the MBR (only when the partition table changed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := gokconfig.Load(*instance)
	if err != nil {
		return err
	}
	name := assemble.InstanceName(cfg)
	if *out == "" {
		*out = filepath.Join("build", "release", name)
	}
	key, err := signingKey(*keyPath)
	if err != nil {
		return err
	}
	if err := keyTrusted(cfg, key); err != nil {
		return err
	}
	p, err := updater.OpenImage(*img)
	if err != nil {
		return err
	}
	defer p.Close()
	m := &release.Manifest{Format: release.Format, Version: p.Timestamp, Created: time.Now().UTC().Truncate(time.Second),
		Instance: name, Urgent: *urgent, BootChangeApproved: *approve}
	if m.BootFiles, err = p.BootFileHashes(); err != nil {
		return err
	}
	if *prev != "" {
		pm, err := readBundleManifest(*prev)
		if err != nil {
			return err
		}
		changed := release.BootChanges(pm.BootFiles, m.BootFiles)
		m.RollbackSafe = len(changed) == 0
		if !m.RollbackSafe && !*approve {
			return fmt.Errorf("the boot partition differs from %s's (%s): the previous root could not boot with it, so a failed update would not roll back; pass -approve-boot-change to release it anyway", *prev, strings.Join(changed, ", "))
		}
	} else if !*approve {
		return errors.New("without -previous the boot partition cannot be compared with the fleet's: pass -previous <bundle dir of the running release>, or -approve-boot-change for a first release")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	pl := p.Payload(*mbr)
	parts := []struct {
		name, file string
		r          io.Reader
	}{{release.PartRoot, "root.squashfs", pl.Root}, {release.PartBoot, "boot.fat", pl.Boot}}
	if pl.MBR != nil {
		parts = append(parts, struct {
			name, file string
			r          io.Reader
		}{release.PartMBR, "mbr.bin", pl.MBR})
	}
	plan, err := p.EEPROM()
	if err != nil {
		return err
	}
	if plan.Ships {
		// The boot FAT for a Pi 4 that already runs this EEPROM, so it is
		// not flashed at every update (what make update decides from the
		// device's status, the probe decides from its own).
		done, _, err := p.PayloadFor(false, &plan.Image)
		if err != nil {
			return err
		}
		parts = append(parts, struct {
			name, file string
			r          io.Reader
		}{release.PartBootEEPROMDone, "boot-eeprom-done.fat", done.Boot})
		m.EEPROM = &release.EEPROM{PieepromSHA256: plan.Image.PieepromSHA256, VL805SHA256: plan.Image.VL805SHA256}
	}
	for _, pt := range parts {
		part, err := writePart(filepath.Join(*out, pt.file), pt.name, pt.r)
		if err != nil {
			return err
		}
		m.Parts = append(m.Parts, part)
	}
	mb, sig, err := release.Sign(m, key)
	if err != nil {
		return err
	}
	// The signature last: a bundle without one is visibly unfinished.
	if err := os.WriteFile(filepath.Join(*out, release.ManifestFile), mb, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*out, release.SignatureFile), sig, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: build %s for %s, rollback_safe %v, urgent %v\n", *out, m.Version, m.Instance, m.RollbackSafe, m.Urgent)
	for _, pt := range m.Parts {
		fmt.Fprintf(stdout, "part %s %s %d bytes sha256 %s\n", pt.Name, pt.File, pt.Size, pt.SHA256)
	}
	return nil
}

// keyTrusted refuses a signing key whose public key the instance's probe
// configuration does not list: its probes would refuse the bundle.
func keyTrusted(cfg *gokconfig.Config, key ed25519.PrivateKey) error {
	pc, err := probeConfig(cfg)
	if err != nil {
		return err
	}
	keys, err := release.ParsePublicKeys(pc.Release.PublicKeys)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.Equal(key.Public()) {
			return nil
		}
	}
	return fmt.Errorf("%s: the probe configuration's release.public_keys does not list the signing key's public key %s, so its probes would refuse the bundle", cfg.Dir, release.EncodePublicKey(key.Public().(ed25519.PublicKey)))
}

func writePart(path, name string, r io.Reader) (release.Part, error) {
	f, err := os.Create(path)
	if err != nil {
		return release.Part{}, err
	}
	part, err := release.NewPart(name, filepath.Base(path), io.TeeReader(r, f))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return part, err
}

// readBundleManifest reads a bundle's manifest (as written; the signature
// is the fleet's business, this only compares boot files).
func readBundleManifest(dir string) (*release.Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, release.ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("-previous: %w", err)
	}
	var m release.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("-previous %s: %w", dir, err)
	}
	return &m, nil
}

package updater

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/presscap/presscap/image/internal/eeprom"
	"github.com/presscap/presscap/image/internal/fat"
	"github.com/presscap/presscap/image/internal/partition"
)

// EEPROMPlan says what a pushed boot FAT does to a Raspberry Pi 4's
// bootloader EEPROM.
type EEPROMPlan struct {
	// Ships is false when the image carries no EEPROM update.
	Ships bool
	// Image is what the image carries (the SHA-256 in its .sig files).
	Image eeprom.Version
	// Recovery is the name recovery.bin has in the pushed boot FAT:
	// recovery.bin (the Pi 4 flashes) or RECOVERY.000 (it does not).
	Recovery string
	// Message is "EEPROM already up to date ..." or "EEPROM will be
	// updated from ... to ...".
	Message string
}

// UpdateFromImage reads the device's status, then pushes the image with a
// boot FAT for that device (see PayloadFor) through Update.
func (t *Target) UpdateFromImage(ctx context.Context, p *ImagePayload, withMBR bool, waitFor time.Duration, log Progress) error {
	if log == nil {
		log = func(string, ...any) {}
	}
	st, err := t.GetStatus(ctx)
	if err != nil {
		return fmt.Errorf("reading the device's status: %w", err)
	}
	pl, plan, err := p.PayloadFor(withMBR, st.EEPROM)
	if err != nil {
		return err
	}
	if plan.Ships {
		log("%s: the boot FAT gets %s", plan.Message, plan.Recovery)
	}
	return t.Update(ctx, pl, waitFor, log)
}

// PayloadFor returns the update for a device that reports dev as its last
// flashed EEPROM (Status.EEPROM). An image built without knowing the device
// ships recovery.bin; when the device already has the image's EEPROM
// update, the boot FAT is rebuilt from the image's files with recovery.bin
// named RECOVERY.000 instead, so the Pi 4 does not flash again (gok does
// the same). Nothing else in the boot FAT changes.
func (p *ImagePayload) PayloadFor(withMBR bool, dev *eeprom.Version) (Payload, EEPROMPlan, error) {
	pl := p.Payload(withMBR)
	plan, rec, err := p.eepromPlan(dev)
	if err != nil || !plan.Ships || rec == plan.Recovery {
		return pl, plan, err
	}
	f, used, err := p.rebuildBoot(map[string]string{strings.ToUpper(rec): plan.Recovery})
	if err != nil {
		return Payload{}, plan, fmt.Errorf("rebuilding the boot FAT with %s: %w", plan.Recovery, err)
	}
	pl.Boot = io.NewSectionReader(f, 0, used)
	return pl, plan, nil
}

// EEPROM reads the image's EEPROM files as they are (Recovery is the name
// the image itself gives recovery.bin).
func (p *ImagePayload) EEPROM() (EEPROMPlan, error) {
	plan, rec, err := p.eepromPlan(nil)
	plan.Recovery, plan.Message = rec, ""
	return plan, err
}

// BootFiles lists the top level of the image's boot FAT.
func (p *ImagePayload) BootFiles() ([]fat.File, error) {
	var out []fat.File
	err := p.boot.Walk(func(f fat.File) error {
		if !strings.Contains(f.Path, "/") {
			out = append(out, f)
		}
		return nil
	})
	return out, err
}

// checkSig returns the hash a .sig file holds once the file it names in
// the boot FAT hashes to it: the device would refuse a mismatch anyway,
// after the update had already been pushed.
func (p *ImagePayload) checkSig(sig []byte, sigName, binName string) (string, error) {
	want := strings.TrimSpace(string(sig))
	b, err := p.boot.ReadFile(binName)
	if err != nil {
		return "", fmt.Errorf("boot FAT has %s but not %s: %w", sigName, binName, err)
	}
	if h := eeprom.Hash(b); h != want {
		return "", fmt.Errorf("boot FAT: %s says %q, %s hashes to %s", sigName, want, binName, h)
	}
	return want, nil
}

// eepromPlan reads the image's EEPROM files and decides; rec is the name
// the image's own boot FAT gives recovery.bin.
func (p *ImagePayload) eepromPlan(dev *eeprom.Version) (plan EEPROMPlan, rec string, err error) {
	sig, err := p.boot.ReadFile(eeprom.PieepromSig)
	if err != nil {
		if _, e := p.boot.Stat(eeprom.PieepromUpd); e == nil {
			return plan, "", fmt.Errorf("boot FAT has %s but no %s: %w", eeprom.PieepromUpd, eeprom.PieepromSig, err)
		}
		return plan, "", nil
	}
	plan.Ships = true
	if plan.Image.PieepromSHA256, err = p.checkSig(sig, eeprom.PieepromSig, eeprom.PieepromUpd); err != nil {
		return plan, "", err
	}
	if vsig, err := p.boot.ReadFile(eeprom.VL805Sig); err == nil {
		if plan.Image.VL805SHA256, err = p.checkSig(vsig, eeprom.VL805Sig, eeprom.VL805Bin); err != nil {
			return plan, "", err
		}
	}
	for _, n := range []string{eeprom.Recovery, eeprom.RecoveryDone} {
		if _, err := p.boot.Stat(n); err == nil {
			if rec != "" {
				return plan, "", fmt.Errorf("boot FAT has both %s and %s", eeprom.Recovery, eeprom.RecoveryDone)
			}
			rec = n
		}
	}
	if rec == "" {
		return plan, "", fmt.Errorf("boot FAT has %s but neither %s nor %s", eeprom.PieepromSig, eeprom.Recovery, eeprom.RecoveryDone)
	}
	plan.Recovery = eeprom.Recovery
	if eeprom.Installed(dev, plan.Image) {
		plan.Recovery = eeprom.RecoveryDone
	}
	plan.Message = eeprom.Describe(dev, plan.Image)
	return plan, rec, nil
}

// rebuildBoot writes the image's boot FAT again, with the same geometry,
// volume id and time stamps, renaming the root directory files named in
// rename (keys upper case), into a temporary file removed by Close. It
// returns the file and its used size. (Empty directories would be dropped;
// image/assemble writes none.)
func (p *ImagePayload) rebuildBoot(rename map[string]string) (*os.File, int64, error) {
	b := fat.NewBuilder()
	err := p.boot.Walk(func(f fat.File) error {
		if f.Dir {
			return nil
		}
		data, err := p.boot.ReadFile(f.Path)
		if err != nil {
			return err
		}
		name := f.Path
		if n, ok := rename[strings.ToUpper(name)]; ok && path.Dir(name) == "." {
			name = n
		}
		return b.AddFile(name, data)
	})
	if err != nil {
		return nil, 0, err
	}
	ts, err := time.Parse(time.RFC3339, p.Timestamp)
	if err != nil {
		return nil, 0, err
	}
	tmp, err := os.CreateTemp("", "presscap-boot-*.fat")
	if err != nil {
		return nil, 0, err
	}
	p.tmp = append(p.tmp, tmp)
	part := p.Layout.Partitions[partition.Boot-1]
	used, err := b.Write(tmp, fat.Options{
		TotalSectors:  uint32(part.Sectors()),
		HiddenSectors: p.boot.Hidden,
		VolumeID:      p.boot.VolumeID,
		ModTime:       ts,
	})
	if err != nil {
		return nil, 0, err
	}
	// Check what will be pushed the way the device will read it.
	if _, err := fat.Open(io.NewSectionReader(tmp, 0, part.Size())); err != nil {
		return nil, 0, err
	}
	return tmp, used, nil
}

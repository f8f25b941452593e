package updater

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/image/internal/eeprom"
	"github.com/presscap/presscap/image/internal/fat"
	"github.com/presscap/presscap/image/internal/partition"
	"github.com/presscap/presscap/internal/testing/testtool"
)

var testTime = time.Date(2026, 11, 27, 9, 30, 15, 0, time.UTC)

// testUpdate stands in for the rpi-eeprom module's newest files.
func testUpdate() *eeprom.Update {
	return &eeprom.Update{PieepromName: "pieeprom-2026-05-17.bin", Pieeprom: bytes.Repeat([]byte("PIEEPROM"), 65536),
		VL805Name: "vl805-000138c0.bin", VL805: bytes.Repeat([]byte("vl805"), 19870), Recovery: bytes.Repeat([]byte("recovery"), 12517)}
}

// writeImage writes a disk image the way image/assemble lays it out (GPT,
// a squashfs superblock in root A, the boot FAT) with a few boot files plus
// the EEPROM update u as a build without a device writes it (u may be nil).
func writeImage(t *testing.T, u *eeprom.Update) string {
	t.Helper()
	sig := partition.Signature("presscap")
	layout, err := partition.NewLayout(sig, 2<<30)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "presscap.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(2 << 30); err != nil {
		t.Fatal(err)
	}
	if err := layout.Write(f); err != nil {
		t.Fatal(err)
	}
	sb := make([]byte, 4096)
	copy(sb, "hsqs")
	binary.LittleEndian.PutUint32(sb[8:], uint32(testTime.Unix()))
	binary.LittleEndian.PutUint16(sb[28:], 4)
	binary.LittleEndian.PutUint64(sb[40:], 4096)
	if _, err := f.WriteAt(sb, layout.Partition(partition.RootA).Offset()); err != nil {
		t.Fatal(err)
	}
	b := fat.NewBuilder()
	for _, bf := range []eeprom.BootFile{
		{Name: "cmdline.txt", Data: []byte("console=tty1 root=PARTUUID=x/PARTNROFF=1" + strings.Repeat(" ", 64))},
		{Name: "vmlinuz", Data: bytes.Repeat([]byte("kernel"), 100000)},
		{Name: "bootcode.bin", Data: []byte("bootcode")},
		{Name: "overlays/act-led.dtbo", Data: []byte("overlay")},
	} {
		if err := b.AddFile(bf.Name, bf.Data); err != nil {
			t.Fatal(err)
		}
	}
	if u != nil {
		for _, bf := range u.BootFiles() {
			if err := b.AddFile(bf.Name, bf.Data); err != nil {
				t.Fatal(err)
			}
		}
	}
	boot := layout.Partition(partition.Boot)
	if _, err := b.Write(io.NewOffsetWriter(f, boot.Offset()), fat.Options{TotalSectors: uint32(boot.Sectors()),
		HiddenSectors: uint32(boot.Start), VolumeID: sig, ModTime: testTime}); err != nil {
		t.Fatal(err)
	}
	return img
}

// bootOf reads the boot FAT bytes pushed to a device back through our
// reader, and writes them to a partition-sized file for fsck.fat and mtools.
func bootOf(t *testing.T, pushed []byte) (*fat.FS, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "boot.fat")
	if err := os.WriteFile(p, pushed, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, partition.BootSectors*partition.SectorSize); err != nil {
		t.Fatal(err)
	}
	fs, err := fat.Open(bytes.NewReader(append(pushed, make([]byte, partition.BootSectors*partition.SectorSize-len(pushed))...)))
	if err != nil {
		t.Fatal(err)
	}
	return fs, p
}

func TestUpdateFromImageFollowsTheDeviceEEPROM(t *testing.T) {
	u := testUpdate()
	img := writeImage(t, u)
	p, err := OpenImage(img)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	orig, err := io.ReadAll(p.Payload(false).Boot)
	if err != nil {
		t.Fatal(err)
	}
	v := u.Version()
	for _, tt := range []struct {
		name     string
		dev      *eeprom.Version
		recovery string
		log      string
	}{
		{"status EEPROM null", nil, "recovery.bin", "EEPROM will be updated from an unknown version"},
		{"older pieeprom", &eeprom.Version{PieepromSHA256: eeprom.Hash([]byte("old")), VL805SHA256: v.VL805SHA256, FirmwareDate: "2025-05-08"},
			"recovery.bin", "EEPROM will be updated from pieeprom " + eeprom.Hash([]byte("old"))[:12]},
		{"older vl805", &eeprom.Version{PieepromSHA256: v.PieepromSHA256, VL805SHA256: eeprom.Hash([]byte("old"))}, "recovery.bin", "EEPROM will be updated"},
		{"matching", &eeprom.Version{PieepromSHA256: v.PieepromSHA256, VL805SHA256: v.VL805SHA256, FirmwareDate: "2026-05-17"},
			"RECOVERY.000", "EEPROM already up to date"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, srv := newDevice("partuuid,updatehash,gpt,")
			defer srv.Close()
			d.eeprom, d.nextBuild = tt.dev, p.Timestamp
			var log bytes.Buffer
			tg := &Target{BaseURL: srv.URL, Password: "secret"}
			err := tg.UpdateFromImage(context.Background(), p, false, 10*time.Second,
				func(f string, a ...any) { log.WriteString(fmt.Sprintf(f, a...) + "\n") })
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(log.String(), tt.log) || !strings.Contains(log.String(), "the boot FAT gets "+tt.recovery) {
				t.Errorf("log lacks %q / %s:\n%s", tt.log, tt.recovery, log.String())
			}
			if d.calls[0] != "GET /" {
				t.Errorf("the status was not read first: %v", d.calls)
			}
			pushed := d.written["/update/boot"]
			fs, part := bootOf(t, pushed)
			other := map[string]string{"recovery.bin": "RECOVERY.000", "RECOVERY.000": "recovery.bin"}[tt.recovery]
			if _, err := fs.Stat(other); err == nil {
				t.Errorf("the pushed boot FAT holds %s", other)
			}
			got, err := fs.ReadFile(tt.recovery)
			if err != nil || !bytes.Equal(got, u.Recovery) {
				t.Errorf("%s: %d bytes, %v", tt.recovery, len(got), err)
			}
			if f, _ := fs.Stat(tt.recovery); !strings.EqualFold(f.Short, tt.recovery) {
				t.Errorf("%s is stored as %q", tt.recovery, f.Short)
			}
			// gokrazy's reader finds what it looks for after the flash.
			if _, _, err := fs.GokrazyExtents("/" + tt.recovery); err != nil {
				t.Error(err)
			}
			for name, want := range map[string][]byte{"pieeprom.upd": u.Pieeprom, "pieeprom.sig": eeprom.Sig(u.Pieeprom),
				"vl805.bin": u.VL805, "vl805.sig": eeprom.Sig(u.VL805), "overlays/act-led.dtbo": []byte("overlay"),
				"bootcode.bin": []byte("bootcode")} {
				if got, err := fs.ReadFile(name); err != nil || !bytes.Equal(got, want) {
					t.Errorf("pushed %s: %d bytes, %v", name, len(got), err)
				}
			}
			if tt.recovery == eeprom.Recovery && !bytes.Equal(pushed, orig) {
				t.Error("a device that needs the flash did not get the image's own boot FAT")
			}
			if tt.recovery == eeprom.RecoveryDone {
				out, err := exec.Command(testtool.Path(t, "fsck.fat", "dosfstools"), "-n", part).CombinedOutput()
				if err != nil {
					t.Errorf("fsck.fat -n on the rebuilt boot FAT: %v\n%s", err, out)
				}
				cmd := exec.Command(testtool.Path(t, "mtype", "mtools"), "-i", part, "::/RECOVERY.000")
				cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
				if got, err := cmd.Output(); err != nil || !bytes.Equal(got, u.Recovery) {
					t.Errorf("mtype RECOVERY.000: %d bytes, %v", len(got), err)
				}
			}
		})
	}
}

// A rebuild that renames nothing reproduces the image's boot FAT byte for
// byte: the renamed one differs only where the name does.
func TestRebuildBootIsFaithful(t *testing.T) {
	img := writeImage(t, testUpdate())
	p, err := OpenImage(img)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	orig, err := io.ReadAll(p.Payload(false).Boot)
	if err != nil {
		t.Fatal(err)
	}
	f, used, err := p.rebuildBoot(nil)
	if err != nil {
		t.Fatal(err)
	}
	again := make([]byte, used)
	if _, err := f.ReadAt(again, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, orig) {
		t.Errorf("rebuilt boot FAT (%d bytes) differs from the image's (%d bytes)", len(again), len(orig))
	}
	name := f.Name()
	p.Close()
	if _, err := os.Stat(name); err == nil {
		t.Errorf("Close left %s behind", name)
	}
}

func TestImageWithoutEEPROM(t *testing.T) {
	p, err := OpenImage(writeImage(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	orig, _ := io.ReadAll(p.Payload(false).Boot)
	pl, plan, err := p.PayloadFor(false, &eeprom.Version{PieepromSHA256: "x"})
	if err != nil || plan.Ships {
		t.Fatalf("plan %+v, %v", plan, err)
	}
	got, _ := io.ReadAll(pl.Boot)
	if !bytes.Equal(got, orig) {
		t.Error("the boot FAT of an image without EEPROM files changed")
	}
}

func TestDamagedEEPROMFilesAreRefused(t *testing.T) {
	u := testUpdate()
	img := writeImage(t, u)
	p, err := OpenImage(img)
	if err != nil {
		t.Fatal(err)
	}
	off, _, err := p.boot.Extents(eeprom.PieepromUpd)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("X"), partition.BootStart*partition.SectorSize+off+1000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p, err = OpenImage(img)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, _, err = p.PayloadFor(false, nil)
	if err == nil || !strings.Contains(err.Error(), "pieeprom.sig") || !strings.Contains(err.Error(), "pieeprom.upd hashes to") {
		t.Errorf("damaged pieeprom.upd: err = %v", err)
	}
}

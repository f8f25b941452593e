package update

import (
	"context"
	"fmt"
	"os"

	"github.com/presscap/presscap/internal/gokrazyhttp"
	"github.com/presscap/presscap/internal/release"
)

// Parts lists the parts of m the probe writes: the root always; the boot
// FAT (and an MBR the bundle carries) only when m changes the boot files,
// which Check allows only with boot_change_approved. A rollback-safe
// release leaves the boot partition alone, so the old root boots on the
// same boot files it came with.
func Parts(m *release.Manifest) []string {
	names := []string{release.PartRoot}
	if !m.RollbackSafe {
		names = append(names, release.PartBoot)
		if _, ok := m.Part(release.PartMBR); ok {
			names = append(names, release.PartMBR)
		}
	}
	return names
}

// Install writes the fetched parts through the device's own update
// endpoints, as a push would, but arms gokrazy's test boot instead of
// switching: the next boot runs the new root once, and only the new
// build's confirmation (Guard) makes it permanent.
func Install(ctx context.Context, dev *gokrazyhttp.Client, m *release.Manifest, files map[string]string, logf func(string, ...any)) error {
	f, err := dev.GetFeatures(ctx)
	if err != nil {
		return fmt.Errorf("update features: %w", err)
	}
	if !f.PARTUUID || !f.GPT {
		return fmt.Errorf("device features %q: need partuuid and gpt (a gokrazy installation with a GPT)", f.Raw)
	}
	steps := []struct{ part, path string }{{release.PartRoot, "/update/root"}}
	if p, ok := files[release.PartBoot]; ok && p != "" {
		// bootonly keeps cmdline.txt on the running root (a plain
		// /update/boot would point it at partition 2, whichever runs):
		// the test boot then tries the new root once.
		steps = append(steps, struct{ part, path string }{release.PartBoot, "/update/bootonly"})
	}
	if p, ok := files[release.PartMBR]; ok && p != "" {
		steps = append(steps, struct{ part, path string }{release.PartMBR, "/update/mbr"})
	}
	for _, s := range steps {
		if err := putFile(ctx, dev, s.path, files[s.part], f.UpdateHash); err != nil {
			return fmt.Errorf("release %s part %s: %w", m.Version, s.part, err)
		}
		logf("update: %s written (%s)", s.part, s.path)
	}
	if err := dev.Post(ctx, "/update/testboot"); err != nil {
		return fmt.Errorf("release %s: arming the test boot: %w", m.Version, err)
	}
	return nil
}

func putFile(ctx context.Context, dev *gokrazyhttp.Client, path, file string, crc bool) error {
	r, err := os.Open(file)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = dev.Put(ctx, path, r, crc)
	return err
}

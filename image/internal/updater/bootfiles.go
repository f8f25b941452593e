package updater

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/presscap/presscap/image/internal/fat"
)

// BootFileHashes maps every file of the image's boot FAT (paths as the FAT
// holds them) to its SHA-256: the boot partition's content, independent of
// the FAT's layout and time stamps, so two builds can be compared.
func (p *ImagePayload) BootFileHashes() (map[string]string, error) {
	out := map[string]string{}
	err := p.boot.Walk(func(f fat.File) error {
		if f.Dir {
			return nil
		}
		b, err := p.boot.ReadFile(f.Path)
		if err != nil {
			return err
		}
		h := sha256.Sum256(b)
		out[f.Path] = hex.EncodeToString(h[:])
		return nil
	})
	return out, err
}

package testtool

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// Removable makes the directories under dir writable for their owner when
// the test ends, so that t.TempDir can remove what a tool (unsquashfs)
// extracted with read-only directories: root removes them regardless,
// anyone else could not.
func Removable(t testing.TB, dir string) {
	t.Helper()
	t.Cleanup(func() {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o700)
			}
			return nil
		})
	})
}

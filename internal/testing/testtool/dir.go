package testtool

import (
	"os"
	"testing"
)

// DirNames lists a directory's entries by name, sorted (os.ReadDir's
// order), failing the test when it cannot be read.
func DirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

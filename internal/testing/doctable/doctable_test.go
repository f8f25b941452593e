package doctable

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "d.md")
	doc := "# T\n\n| a | b |\n|---|---|\n| x | y |\n\n## Fields\n\nText.\n\n| f | d |\n|---|---|\n| `a\\|b` | 1 |\n| `c` | 2 |\n\n| other | table |\n"
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	rows, err := Read(p, "## Fields")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"f", "d"}, {"`a|b`", "1"}, {"`c`", "2"}}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("Read = %q, want %q", rows, want)
	}
	if rows, err := Read(p, "# T"); err != nil || len(rows) != 2 || rows[1][0] != "x" {
		t.Errorf("Read of the first line's heading = %q, %v", rows, err)
	}
	if _, err := Read(p, "## Missing"); err == nil || !strings.Contains(err.Error(), "## Missing") {
		t.Errorf("Read of a missing heading: %v", err)
	}
	if _, err := Read(p, "# T\n\nnope"); err == nil {
		t.Error("Read found a heading that is not there")
	}
}

// Package doctable reads the markdown tables of the documentation, for the
// tests that keep a table true to the code (the configuration reference,
// the LED table).
package doctable

import (
	"fmt"
	"os"
	"strings"
)

// Read returns the rows of the first table after the line heading (such as
// "## Fields") in the markdown file path: each row's cells, trimmed, the
// header row first, the separator row left out.
func Read(path, heading string) ([][]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	_, after, ok := strings.Cut("\n"+string(b), "\n"+heading+"\n")
	if !ok {
		return nil, fmt.Errorf("%s has no heading %q", path, heading)
	}
	var rows [][]string
	for _, line := range strings.Split(after, "\n") {
		if !strings.HasPrefix(line, "|") {
			if len(rows) > 0 {
				break
			}
			continue
		}
		// An escaped \| is a pipe inside a cell.
		line = strings.ReplaceAll(line, `\|`, "\x00")
		cells := strings.Split(strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|"), "|")
		for i := range cells {
			cells[i] = strings.ReplaceAll(strings.TrimSpace(cells[i]), "\x00", "|")
		}
		if strings.HasPrefix(cells[0], "---") {
			continue
		}
		rows = append(rows, cells)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no table after %q", path, heading)
	}
	return rows, nil
}

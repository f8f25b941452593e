package fleet

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Uptime is the time since the kernel booted (/proc/uptime below root).
func Uptime(root string) (time.Duration, error) {
	p := filepath.Join(root, "proc/uptime")
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			return time.Duration(v * float64(time.Second)), nil
		}
	}
	return 0, fmt.Errorf("%s: no seconds in %q", p, b)
}

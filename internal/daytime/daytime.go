// Package daytime reads the times of day the configuration names
// ("02:00", quiet hours "21:00-08:00").
package daytime

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse reads "HH:MM" (24 h, two digits each) into hour and minute.
func Parse(s string) (hour, min int, err error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, 0, fmt.Errorf("%q is not HH:MM", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, 0, fmt.Errorf("%q is not a time of day HH:MM (00:00..23:59)", s)
	}
	return hh, mm, nil
}

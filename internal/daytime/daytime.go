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

// ParseRange reads "HH:MM-HH:MM" into minutes of the day [from, to),
// across midnight when from > to.
func ParseRange(s string) (from, to int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not HH:MM-HH:MM (e.g. \"03:00-05:00\")", s)
	}
	ah, am, err := Parse(strings.TrimSpace(a))
	if err != nil {
		return 0, 0, err
	}
	bh, bm, err := Parse(strings.TrimSpace(b))
	if err != nil {
		return 0, 0, err
	}
	return ah*60 + am, bh*60 + bm, nil
}

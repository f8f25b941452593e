package field

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// MinPeriod is the shortest period of any polling or retry loop the
// configuration sets (trigger.rescan, storage.retry, upload.retry.initial):
// a shorter one spins a core of the probe that the capture needs, or
// hammers a server with attempts.
const MinPeriod = 100 * time.Millisecond

// Duration is a time.Duration written in JSON as a Go duration string
// ("30s", "2m", "1h30m"), so that a bare number never means nanoseconds by
// accident.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON accepts only a duration string. Errors are
// *json.UnmarshalTypeError so that encoding/json adds the field's path.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: fmt.Sprintf("%s (want a duration string such as \"30s\")", b), Type: reflect.TypeOf(*d)}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &json.UnmarshalTypeError{Value: fmt.Sprintf("%q (want a duration such as \"30s\" or \"2m\")", s), Type: reflect.TypeOf(*d)}
	}
	*d = Duration(v)
	return nil
}

// Size is a byte count, written in JSON as a number of bytes or as a string
// with a unit: "512MiB", "4GiB", "2GB", "100k".
type Size int64

// MarshalJSON writes the size with the largest binary unit that divides it.
func (s Size) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

func (s Size) String() string {
	units := []struct {
		name string
		n    int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	for _, u := range units {
		if s != 0 && int64(s)%u.n == 0 {
			return fmt.Sprintf("%d%s", int64(s)/u.n, u.name)
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// UnmarshalJSON accepts a number of bytes or a string with a unit.
func (s *Size) UnmarshalJSON(b []byte) error {
	bad := func(v string) error {
		return &json.UnmarshalTypeError{Value: fmt.Sprintf("%s (want bytes, or a size such as \"4GiB\" or \"500MB\")", v), Type: reflect.TypeOf(*s)}
	}
	if len(b) > 0 && b[0] != '"' {
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil || n < 0 {
			return bad(string(b))
		}
		*s = Size(n)
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return bad(string(b))
	}
	n, err := ParseSize(str)
	if err != nil {
		return bad(strconv.Quote(str))
	}
	*s = n
	return nil
}

// sizeUnits are the units ParseSize knows, lower case: a bare letter and
// the IEC names are powers of 1024, the SI names ("kb", "gb") of 1000.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10, "kb": 1000,
	"m": 1 << 20, "mib": 1 << 20, "mb": 1000 * 1000,
	"g": 1 << 30, "gib": 1 << 30, "gb": 1000 * 1000 * 1000,
	"t": 1 << 40, "tib": 1 << 40, "tb": 1000 * 1000 * 1000 * 1000,
}

// ParseSize parses "4GiB", "500MB", "100k", "4G" or a plain number of
// bytes, for configuration files and command-line flags alike. The error
// quotes str and says what is wanted, so a caller only prefixes the flag
// or field name.
func ParseSize(str string) (Size, error) {
	t := strings.TrimSpace(str)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') {
		i--
	}
	num, unit := strings.TrimSpace(t[:i]), strings.ToLower(strings.TrimSpace(t[i:]))
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: want a number of bytes or a size such as \"4GiB\" or \"500MB\"", str)
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (want B, K, KiB, KB, M, MiB, MB, G, GiB, GB, T, TiB or TB)", str, t[i:])
	}
	if n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q: out of range", str)
	}
	return Size(n * mult), nil
}

// Package tunnel opens the reverse tunnel the provider asks for with a
// file fleet/tunnel/<id> on the server: remote forwards on the server's
// loopback, over the upload's pinned SSH connection, to the probe's own
// gokrazy web UI and status page, for as long as the file is there and at
// most tunnel.max_duration.
package tunnel

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxFile bounds the request file: a few short lines.
const MaxFile = 4096

// Bounds of what a request may name. The ports are on the server's
// loopback only; the targets are the configuration's, never the file's.
const (
	MinPort   = 1024
	MaxPort   = 65535
	MaxBy     = 64
	MaxReason = 200
)

// Request is what fleet/tunnel/<id> asks for, one key=value a line:
//
//	web=20001      the server port for the gokrazy web UI (and make update)
//	status=20002   the server port for the status page
//	by=alice       who asked (logged and reported)
//	reason=ticket 4711
//
// At least one port; blank lines and lines starting with '#' are skipped.
type Request struct {
	Web, Status int
	By, Reason  string
}

// Parse reads a request file, refusing anything else with an error that
// names the byte, the line or the key.
func Parse(b []byte) (Request, error) {
	var r Request
	if len(b) > MaxFile {
		return r, fmt.Errorf("larger than %d bytes", MaxFile)
	}
	for i := 0; i < len(b); {
		c, n := utf8.DecodeRune(b[i:])
		if c == utf8.RuneError && n == 1 {
			return r, fmt.Errorf("byte %d: 0x%02x is not UTF-8", i, b[i])
		}
		if unicode.IsControl(c) && c != '\n' && c != '\r' && c != '\t' {
			return r, fmt.Errorf("byte %d: control character %U", i, c)
		}
		i += n
	}
	seen := map[string]bool{}
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok {
			return r, fmt.Errorf("line %d: %q is not key=value", n+1, line)
		}
		if seen[key] {
			return r, fmt.Errorf("line %d: %s given twice", n+1, key)
		}
		seen[key] = true
		var err error
		switch key {
		case "web":
			r.Web, err = port(val)
		case "status":
			r.Status, err = port(val)
		case "by":
			r.By, err = text(val, MaxBy)
		case "reason":
			r.Reason, err = text(val, MaxReason)
		default:
			err = errors.New("unknown key (want web, status, by or reason)")
		}
		if err != nil {
			return r, fmt.Errorf("line %d: %s: %w", n+1, key, err)
		}
	}
	switch {
	case r.Web == 0 && r.Status == 0:
		return r, errors.New("web, status: neither given (name at least one port)")
	case r.Web == r.Status:
		return r, fmt.Errorf("status: %d is web's port too", r.Status)
	}
	return r, nil
}

func port(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < MinPort || n > MaxPort {
		return 0, fmt.Errorf("%q: want a port %d to %d on the server's loopback", s, MinPort, MaxPort)
	}
	return n, nil
}

func text(s string, limit int) (string, error) {
	if n := utf8.RuneCountInString(s); n > limit {
		return "", fmt.Errorf("%d characters, more than %d", n, limit)
	}
	return s, nil
}

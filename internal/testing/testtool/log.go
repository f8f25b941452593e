package testtool

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// Log keeps the lines a component logs (its Logf is the component's
// logf), for a test to search; with T set it also shows them in the
// test's output.
type Log struct {
	T testing.TB

	mu    sync.Mutex
	lines []string
}

// Logf records one line.
func (l *Log) Logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	if l.T != nil {
		l.T.Helper()
		l.T.Logf(format, args...)
	}
}

// String is every line so far, one a line.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// Matching is every line so far that contains s ("" matches all).
func (l *Log) Matching(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

package filter

import (
	"errors"
	"io"

	"golang.org/x/net/bpf"
)

// Placeholders until the compiler lands; replaced in the next commits.
var errNotYet = errors.New("filter: not implemented yet")

type rawIns struct{}

func compileRules(rules []Rule, mode Mode, defaultSnap uint32) ([]bpf.Instruction, error) {
	return nil, errNotYet
}

func newMatcher(expr string) (*Matcher, error) { return nil, errNotYet }

func (m *Matcher) run(frame []byte, wireLen int) uint32 { return 0 }

func dump(w io.Writer, prog []bpf.Instruction, f DumpFormat) error { return errNotYet }

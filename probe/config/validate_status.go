package config

import (
	"fmt"
	"unicode/utf8"
)

const (
	// MinTokenLen and MinTokenDistinct rule out a status.token that is
	// long but guessable: one repeated character, 16 spaces, "abab...".
	MinTokenLen      = 16
	MinTokenDistinct = 10
)

func (s Status) validate() Errors {
	var es Errors
	for i, a := range s.Listen {
		if err := checkListen(a); err != nil {
			es.AddErr(fmt.Sprintf("listen[%d]", i), "bad address", err)
		}
	}
	if p := tokenProblem(s.Token); p != "" {
		es.Add("token", "%s", p)
	}
	if s.RecentPresses < 0 {
		es.Add("recent_presses", "must not be negative")
	}
	return es
}

// tokenProblem says why a non-empty token is too easy to guess, or "".
func tokenProblem(tok string) string {
	if tok == "" {
		return ""
	}
	seen := map[rune]bool{}
	for _, r := range tok {
		seen[r] = true
	}
	switch n := utf8.RuneCountInString(tok); {
	case n < MinTokenLen:
		return fmt.Sprintf("is shorter than %d characters", MinTokenLen)
	case len(seen) < MinTokenDistinct:
		return fmt.Sprintf("has %d distinct characters, fewer than %d: too easy to guess", len(seen), MinTokenDistinct)
	}
	return ""
}

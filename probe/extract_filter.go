package main

import (
	"fmt"

	"github.com/presscap/presscap/probe/filter"
)

// compileExtractFilter turns a -filter expression into a predicate over
// frames as stored in the ring (VLAN tags inside the frame), evaluated in
// userspace by filter.Matcher. An empty expression means no filter.
func compileExtractFilter(expr string) (func(frame []byte) bool, error) {
	if expr == "" {
		return nil, nil
	}
	m, err := filter.NewMatcher(expr)
	if err != nil {
		return nil, fmt.Errorf("-filter: %w", err)
	}
	return m.Match, nil
}

package main

import (
	"fmt"

	"github.com/presscap/presscap/probe/internal/filter"
)

// compileExtractFilter turns a -filter expression into a predicate over
// frames as stored in the ring (VLAN tags inside the frame), evaluated in
// userspace by filter.Matcher. The predicate takes the record's original
// length, so that `len`, `less` and `greater` judge a sliced packet by its
// length on the wire, as tcpdump -r does on a sliced capture file. An empty
// expression means no filter.
func compileExtractFilter(expr string) (func(frame []byte, origLen int) bool, error) {
	if expr == "" {
		return nil, nil
	}
	m, err := filter.NewMatcher(expr)
	if err != nil {
		return nil, fmt.Errorf("-filter: %w", err)
	}
	return m.MatchLen, nil
}

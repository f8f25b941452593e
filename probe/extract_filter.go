package main

import "fmt"

// compileExtractFilter turns a -filter expression into a predicate over frames
// as stored in the ring. The filter issue replaces this with the real compiler.
func compileExtractFilter(expr string) (func(frame []byte) bool, error) {
	if expr == "" {
		return nil, nil
	}
	return nil, fmt.Errorf("-filter %q: %w", expr, errNotYet)
}

package main

import "errors"

// errNotYet marks a subcommand whose issue is still open; each cmd_*.go file
// replaces its use as the subcommand lands.
var errNotYet = errors.New("not implemented yet")

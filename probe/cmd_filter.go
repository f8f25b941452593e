package main

import "context"

func runFilter(ctx context.Context, e env, args []string) error { return errNotYet }

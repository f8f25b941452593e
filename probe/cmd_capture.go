package main

import "context"

func runCapture(ctx context.Context, e env, args []string) error { return errNotYet }

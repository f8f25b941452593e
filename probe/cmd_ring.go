package main

import "context"

func runRing(ctx context.Context, e env, args []string) error { return errNotYet }

func runExtract(ctx context.Context, e env, args []string) error { return errNotYet }

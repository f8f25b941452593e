package main

import "context"

func runService(ctx context.Context, e env, args []string) error { return errNotYet }

func runCheck(ctx context.Context, e env, args []string) error { return errNotYet }

func runTrigger(ctx context.Context, e env, args []string) error { return errNotYet }

package main

import "context"

func runBeep(ctx context.Context, e env, args []string) error { return errNotYet }

func runLED(ctx context.Context, e env, args []string) error { return errNotYet }

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/presscap/presscap/probe/config"
)

func runService(ctx context.Context, e env, args []string) error { return errNotYet }

// loadConfig finds, parses and validates the configuration: -config, then
// $PRESSCAP_CONFIG, then config.SearchPaths, else the defaults.
func loadConfig(flagPath string) (config.Config, string, error) {
	path, err := config.Find(flagPath, os.Getenv)
	if err != nil {
		return config.Config{}, "", err
	}
	c := config.DefaultConfig()
	if path != "" {
		if c, err = config.Load(path); err != nil {
			return config.Config{}, path, err
		}
	}
	if err := c.Validate(); err != nil {
		name := path
		if name == "" {
			name = "the built-in defaults"
		}
		return config.Config{}, path, fmt.Errorf("config %s is not valid:\n%w", name, err)
	}
	return c, path, nil
}

func runCheck(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("check", e)
	path := fs.String("config", "", "configuration file (default: $"+config.EnvVar+", then "+fmt.Sprint(config.SearchPaths())+")")
	printDefault := fs.Bool("print-default", false, "print the default configuration as JSON and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("check: unexpected arguments %q", fs.Args())
	}
	if *printDefault {
		b, err := json.MarshalIndent(config.DefaultConfig(), "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "%s\n", b)
		return err
	}
	c, used, err := loadConfig(*path)
	if err != nil {
		return err
	}
	if used == "" {
		used = "no file (built-in defaults)"
	}
	fmt.Fprintf(e.stdout, "%s: OK\n", used)
	fmt.Fprintf(e.stdout, "window: %v before + %v after; the ring holds about %v at %g Mbit/s\n",
		c.Trigger.Before.D(), c.Trigger.After.D(), c.History().Round(1e9), c.Ring.ExpectedMbps)
	for _, x := range c.Exports {
		f := x.Filter
		if f == "" {
			f = "(all packets)"
		}
		link := x.Link
		if link == "" {
			link = "all links"
		}
		fmt.Fprintf(e.stdout, "export %s: %s on %s\n", x.Name, f, link)
	}
	return nil
}

func runTrigger(ctx context.Context, e env, args []string) error { return errNotYet }

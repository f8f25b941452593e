package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/presscap/presscap/probe/fleet"
)

// runFleet is the provider's overview: one line per probe from a copy of
// the server's fleet/status reports.
func runFleet(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("fleet", e)
	asJSON := fs.Bool("json", false, "print the entries as JSON, for scripts")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{err: fmt.Errorf("fleet: want one directory (the server's remote_dir or its fleet/status)")}
	}
	dir := fs.Arg(0)
	if strings.HasPrefix(dir, "sftp://") {
		return fmt.Errorf("fleet: %s: reading over SFTP is not supported yet; copy the directory first (sftp -r)", dir)
	}
	now := time.Now()
	entries, err := fleet.ReadDir(dir, now)
	if err != nil {
		return err
	}
	if *asJSON {
		if entries == nil {
			entries = []fleet.Entry{}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLABEL\tHOST\tLAST SEEN\tHEALTH\tWHY")
	for _, en := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", en.ID, orDash(en.Label), orDash(en.Hostname),
			lastSeen(en.LastSeen, now), en.Health, strings.Join(en.Reasons, "; "))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// lastSeen is the server's time of the report in UTC and how long ago.
func lastSeen(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	ago := now.Sub(t).Round(time.Minute)
	var s string
	switch {
	case ago >= 48*time.Hour:
		s = fmt.Sprintf("%d days ago", int(ago/(24*time.Hour)))
	case ago >= time.Hour:
		s = fmt.Sprintf("%d h ago", int(ago/time.Hour))
	default:
		s = fmt.Sprintf("%d min ago", int(ago/time.Minute))
	}
	return t.UTC().Format("2006-01-02 15:04Z") + " (" + s + ")"
}

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/presscap/presscap/probe/internal/fleet"
	"github.com/presscap/presscap/probe/internal/upload"
)

// runFleet is the provider's overview: one line per probe from a copy of
// the server's fleet/status reports.
func runFleet(ctx context.Context, e env, args []string) error {
	// The provider's other tools; a directory of such a name is ./NAME.
	if len(args) > 0 {
		switch args[0] {
		case "password":
			return runFleetPassword(ctx, e, args[1:])
		case "password-key":
			return runFleetPasswordKey(ctx, e, args[1:])
		case "enroll":
			return runFleetEnroll(ctx, e, args[1:])
		}
	}
	fs := newFlagSet("fleet", e)
	asJSON := fs.Bool("json", false, "print the entries as JSON, for scripts")
	src := fleetSourceFlags(fs)
	if err := parseArgsN(fs, args, 1, "one directory (the server's remote_dir or its fleet/status) or sftp://USER@HOST[:PORT]/REMOTE_DIR"); err != nil {
		return err
	}
	dir, done, err := src.local(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	defer done()
	now := time.Now()
	entries, err := fleet.ReadDir(dir, now)
	if err != nil {
		return err
	}
	if *asJSON {
		return printList(e.stdout, entries)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLABEL\tHOST\tLAST SEEN\tHEALTH\tWHY")
	for _, en := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", en.ID, orDash(en.Label), orDash(en.Hostname),
			lastSeen(en.LastSeen, now), en.Health, strings.Join(en.Reasons, "; "))
	}
	return tw.Flush()
}

// printList prints a list for scripts, indented; none is [] rather than
// null.
func printList[T any](w io.Writer, list []T) error {
	if list == nil {
		list = []T{}
	}
	return printJSON(w, list)
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

// fleetSource is where the provider's commands read the reports: a
// directory, or the server over SFTP with these flags.
type fleetSource struct{ key, hostKey *string }

func fleetSourceFlags(fs *flag.FlagSet) fleetSource {
	home, _ := os.UserHomeDir()
	return fleetSource{
		key:     fs.String("key", filepath.Join(home, ".ssh", "id_ed25519"), "SSH private key `FILE` for sftp:// (unencrypted)"),
		hostKey: fs.String("host-key", "", "the server's host key for sftp://: a known_hosts `LINE`, public key or SHA256: fingerprint (required)"),
	}
}

// local is dir itself, or a temporary copy of the server's reports for an
// sftp:// URL, removed by done.
func (s fleetSource) local(ctx context.Context, dir string) (string, func(), error) {
	if !strings.HasPrefix(dir, "sftp://") {
		return dir, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "presscap-fleet-")
	if err != nil {
		return "", nil, err
	}
	done := func() { os.RemoveAll(tmp) }
	if err := fetchFleet(ctx, dir, *s.key, *s.hostKey, tmp); err != nil {
		done()
		return "", nil, fmt.Errorf("fleet: %w", err)
	}
	return tmp, done, nil
}

// fetchFleet copies the reports from sftp://USER@HOST[:PORT]/REMOTE_DIR
// into dir with the upload's connection code (pinned host key).
func fetchFleet(ctx context.Context, rawURL, key, hostKey, dir string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	if u.User == nil || u.User.Username() == "" || u.Host == "" || u.Path == "" {
		return fmt.Errorf("%s: want sftp://USER@HOST[:PORT]/REMOTE_DIR", rawURL)
	}
	if _, set := u.User.Password(); set {
		return fmt.Errorf("%s: a password in the URL is not supported; log in with -key", rawURL)
	}
	if hostKey == "" {
		return fmt.Errorf("-host-key is required for sftp:// (the server's key is pinned, as on the probe)")
	}
	cfg := upload.DefaultConfig()
	cfg.Server, cfg.User, cfg.RemoteDir, cfg.HostKey = u.Host, u.User.Username(), u.Path, hostKey
	return upload.FetchFleet(ctx, cfg, key, dir)
}

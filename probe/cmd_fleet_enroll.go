package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/presscap/presscap/probe/internal/fleet/enroll"
	"github.com/presscap/presscap/probe/internal/upload"
)

// Where the provider's server keeps the enrolment drop box and the
// accounts' keys, as docs/provider/fleet.md sets it up.
const (
	defaultPending = "/srv/presscap/enroll/upload/fleet/enroll"
	defaultKeys    = "/etc/ssh/presscap-keys"
)

// runFleetEnroll is the provider's enrolment script, run on the SFTP
// server: list the probes waiting, accept one the provider confirmed (its
// key goes into its account's authorized_keys), or reject one.
func runFleetEnroll(_ context.Context, e env, args []string) error {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprintf(e.stderr, "usage: probe fleet enroll (list | accept | reject) [flags] [ID]\n")
		if len(args) == 0 {
			return usageError{err: errors.New("fleet enroll: want list, accept or reject")}
		}
		return flag.ErrHelp
	}
	sub := args[0]
	fs := newFlagSet("fleet enroll "+sub, e)
	pending := fs.String("pending", defaultPending, "the enrolment account's fleet/enroll `DIR`")
	keys := fs.String("keys", defaultKeys, "`DIR` of the accounts' authorized_keys, one file per account (AuthorizedKeysFile DIR/%u)")
	account := fs.String("account", "presscap-{id8}", "the probe's account `NAME`; {id} and {id8} stand for its id")
	asJSON := fs.Bool("json", false, "list: print JSON")
	fp := fs.String("fingerprint", "", "accept: the key's `SHA256:` fingerprint as the provider checked it (e.g. on the probe's status page); another key is refused")
	if err := parseArgs(fs, args[1:]); err != nil {
		return err
	}
	srv := enroll.Server{Pending: *pending, Keys: *keys, Account: func(id string) string {
		return upload.Config{User: *account}.ForProbe(id).User
	}}
	switch sub {
	case "list":
		if fs.NArg() != 0 {
			return usageError{err: errors.New("fleet enroll list: no arguments")}
		}
		ps, err := srv.List()
		if err != nil {
			return err
		}
		if *asJSON {
			return printList(e.stdout, ps)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tACCOUNT\tWRITTEN\tFINGERPRINT\tSTATE")
		for _, p := range ps {
			state := p.State
			if p.Problem != "" {
				state = "refused: " + p.Problem
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.ID, p.Account, p.Written.UTC().Format("2006-01-02 15:04Z"), orDash(p.Fingerprint), state)
		}
		return tw.Flush()
	case "accept", "reject":
		if fs.NArg() != 1 {
			return usageError{err: fmt.Errorf("fleet enroll %s: want one probe ID", sub)}
		}
		if sub == "reject" {
			return srv.Reject(fs.Arg(0))
		}
		p, err := srv.Accept(fs.Arg(0), *fp)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s: key %s now in %s/%s (account %s)\n", p.ID, p.Fingerprint, *keys, p.Account, p.Account)
		return nil
	}
	return usageError{err: fmt.Errorf("fleet enroll: unknown subcommand %q (want list, accept or reject)", sub)}
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/presscap/presscap/internal/safefile"
	"github.com/presscap/presscap/probe/internal/report"
)

// runReport is `probe report`: the capture report of any pcap or pcapng
// file, as the probe computes it for a press.
func runReport(_ context.Context, e env, args []string) error {
	fs := newFlagSet("report", e)
	out := fs.String("o", "", "write the HTML report to `FILE`")
	asJSON := fs.Bool("json", false, "print the summary as JSON (the manifest's summary object)")
	heuristic := fs.Bool("heuristic-rtp", true, "take RTP-looking UDP for RTP when no SDP in the file announced it (tshark's rtp.heuristic_rtp)")
	press := fs.String("press", "", "mark the press at `TIME` (RFC 3339) in the rate graph")
	if err := parseArgsN(fs, args, 1, "exactly one capture file"); err != nil {
		return err
	}
	opt := report.Options{HeuristicRTP: *heuristic}
	if *press != "" {
		var err error
		if opt.Press, err = parseTimeFlag("press", *press); err != nil {
			return usageError{err: fmt.Errorf("report: %w", err)}
		}
	}
	name := fs.Arg(0)
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer f.Close()
	s, readErr := report.Read(f, opt)
	if s == nil {
		return fmt.Errorf("report: %s: %w", name, readErr)
	}
	if *out != "" {
		if err := writeReportHTML(*out, s, filepath.Base(name)); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	if *asJSON {
		if err := printJSON(e.stdout, s); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	} else if *out == "" {
		printFindings(e, s)
	}
	if readErr != nil {
		// The report covers the packets before the damage; say where it is.
		return fmt.Errorf("report: %s: the report covers the packets before: %w", name, readErr)
	}
	return nil
}

// writeReportHTML replaces path with the page whole, as the export writes
// a window's (safefile): a reader never sees half of it.
func writeReportHTML(path string, s *report.Summary, name string) error {
	var page bytes.Buffer
	if err := report.WriteHTML(&page, s, "Capture report: "+name); err != nil {
		return err
	}
	return safefile.WriteFile(path, page.Bytes(), 0o644)
}

// printFindings is the short text form: the counts and the findings.
func printFindings(e env, s *report.Summary) {
	fmt.Fprintf(e.stdout, "%d packets, %d bytes; %d RTP streams, %d SIP calls, %d DNS queries, %d TCP connections\n",
		s.Packets, s.Bytes, len(s.RTPStreams), s.SIP.Calls, s.DNS.Queries, s.TCP.Connections)
	if len(s.Links) > 1 {
		for _, l := range s.Links {
			side := ""
			if l.Side != "" {
				side = " (" + l.Side + " side)"
			}
			fmt.Fprintf(e.stdout, "link %s%s: %d packets, %d bytes\n", l.Name, side, l.Packets, l.Bytes)
		}
	}
	if len(s.Findings) == 0 {
		fmt.Fprintln(e.stdout, "no findings")
	}
	for _, f := range s.Findings {
		fmt.Fprintf(e.stdout, "%-7s %s\n        %s .. %s  %s\n", f.Severity, f.Text,
			f.First.Format("15:04:05.000"), f.Last.Format("15:04:05.000"), f.DisplayFilter)
	}
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/presscap/presscap/internal/field"
	"github.com/presscap/presscap/probe/internal/export"
	"github.com/presscap/presscap/probe/internal/filter"
	"github.com/presscap/presscap/probe/internal/ringimport"
	"github.com/presscap/presscap/ringfs"
)

func runRing(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return usageError{err: errors.New("ring: want a subcommand: import or info")}
	}
	if isHelp(args[0]) {
		// Both subcommands' usages, as `probe help ring` shows them.
		fmt.Fprintf(e.stderr, "usage: probe ring (import | info) [flags]\n\nRing maintenance: import, info.\n\n")
		runRingImport(ctx, e, []string{"-h"})
		fmt.Fprintln(e.stderr)
		runRingInfo(e, []string{"-h"})
		return flag.ErrHelp
	}
	switch args[0] {
	case "import":
		return runRingImport(ctx, e, args[1:])
	case "info":
		return runRingInfo(e, args[1:])
	}
	return usageError{err: fmt.Errorf("ring: unknown subcommand %q (want import or info)", args[0])}
}

func runRingImport(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("ring import", e)
	rf := addRingFlags(fs)
	link := fs.String("link", "import", "link name for interfaces the file does not name")
	flush := fs.Duration("flush", time.Second, "flush interval of the ring")
	syncEvery := fs.Int("sync-every", 0, "also flush every N packets and print \"durable N\" (for tests)")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if *rf.dir == "" {
		return errors.New("ring import: -ring is required")
	}
	files := fs.Args()
	if len(files) == 0 {
		return errors.New("ring import: no capture files given")
	}
	if err := ringfs.CheckLinkName(*link); err != nil {
		return fmt.Errorf("ring import: -link: %w", err)
	}
	// Check every file to its end and every link it needs first, so that
	// a bad file or a clash found in the last one adds nothing.
	plan, err := ringimport.NewPlan(files, *link)
	if err != nil {
		return fmt.Errorf("ring import: %w", err)
	}
	r, created, err := rf.open(ringfs.Options{FlushInterval: *flush})
	if err != nil {
		return fmt.Errorf("ring import: %w", err)
	}
	if err := plan.Fits(r); err != nil {
		r.Close()
		return fmt.Errorf("ring import: %w (nothing imported)", err)
	}
	if n, perr := field.ParseSize(*rf.size); !created && *rf.size != "" && perr == nil {
		if in, ierr := r.Info(); ierr == nil && in.Size != int64(n) {
			fmt.Fprintf(e.stderr, "ring import: %s already holds a ring of %d bytes; -size %s ignored\n", *rf.dir, in.Size, *rf.size)
		}
	}
	total, err := ringimport.Import(ctx, r, files, ringimport.Options{Fallback: *link, SyncEvery: *syncEvery,
		Durable: func(n int) { fmt.Fprintf(e.stdout, "durable %d\n", n) }})
	if err != nil {
		r.Close()
		return fmt.Errorf("ring import: %w", err)
	}
	if err := r.Close(); err != nil {
		return fmt.Errorf("ring import: %w", err)
	}
	fmt.Fprintf(e.stdout, "imported %d packets from %d files into %s\n", total, len(files), *rf.dir)
	return nil
}

// ringFlags are the flags of the commands that write into a ring and
// create it where the directory holds none (capture, ring import).
type ringFlags struct {
	dir, size, keyDir *string
	encrypt           *bool
}

func addRingFlags(fs *flag.FlagSet) ringFlags {
	return ringFlags{
		dir:     fs.String("ring", "", "ring directory; created if it holds no ring (required)"),
		size:    fs.String("size", "", "ring size when creating it (bytes, or a unit: K, M, G, T and KiB... are powers of 1024, KB... of 1000)"),
		encrypt: fs.Bool("encrypt", false, "create the ring encrypted, its key kept in -key-dir"),
		keyDir:  keyDirFlag(fs),
	}
}

// open opens the ring in -ring, or creates one of -size (encrypted with
// -encrypt) when it holds none; o gives the other options.
func (f ringFlags) open(o ringfs.Options) (r *ringfs.Ring, created bool, err error) {
	o.Encrypt, o.KeyDir = *f.encrypt, *f.keyDir
	if *f.size != "" {
		n, err := field.ParseSize(*f.size)
		if err != nil {
			return nil, false, fmt.Errorf("-size %w", err)
		}
		o.Size = int64(n)
	}
	r, created, err = ringfs.OpenOrCreate(*f.dir, o)
	if errors.Is(err, ringfs.ErrNoRing) {
		err = fmt.Errorf("%w (give -size to create a ring, at least %d bytes)", err, ringfs.MinSize)
	}
	return r, created, keyHint(err, o.KeyDir)
}

// keyDirFlag is the -key-dir flag of the commands that open a ring.
func keyDirFlag(fs *flag.FlagSet) *string {
	return fs.String("key-dir", "", "directory holding an encrypted ring's key (on the probe: storage.state_dir)")
}

// keyHint says which flag gives an encrypted ring's key.
func keyHint(err error, keyDir string) error {
	if errors.Is(err, ringfs.ErrNoKey) && keyDir == "" {
		return fmt.Errorf("%w (give -key-dir)", err)
	}
	return err
}

// openReadOnly opens the ring in dir for reading, with its key from keyDir
// if it is encrypted.
func openReadOnly(dir, keyDir string) (*ringfs.Ring, error) {
	r, err := ringfs.Open(dir, ringfs.Options{ReadOnly: true, KeyDir: keyDir})
	return r, keyHint(err, keyDir)
}

func runRingInfo(e env, args []string) error {
	fs := newFlagSet("ring info", e)
	dir := fs.String("ring", "", "ring directory (required)")
	asJSON := fs.Bool("json", false, "print JSON")
	keyDir := keyDirFlag(fs)
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("ring info: -ring is required")
	}
	r, err := openReadOnly(*dir, *keyDir)
	if err != nil {
		return fmt.Errorf("ring info: %w", err)
	}
	defer r.Close()
	in, err := r.Info()
	if err != nil {
		return fmt.Errorf("ring info: %w", err)
	}
	if *asJSON {
		return printJSON(e.stdout, in)
	}
	w := e.stdout
	fmt.Fprintf(w, "ring      %s\n", in.Dir)
	fmt.Fprintf(w, "size      %d bytes (%d segments of %d, blocks up to %d)\n", in.Size, in.Segments, in.SegmentSize, in.BlockSize)
	fmt.Fprintf(w, "used      %d bytes in %d blocks\n", in.Used, in.Blocks)
	if in.Packets > 0 {
		fmt.Fprintf(w, "oldest    %s\n", fmtTime(in.Oldest))
		fmt.Fprintf(w, "newest    %s\n", fmtTime(in.Newest))
		fmt.Fprintf(w, "span      %v\n", time.Duration(in.Newest-in.Oldest))
	}
	fmt.Fprintf(w, "packets   %d\n", in.Packets)
	fmt.Fprintf(w, "bytes     %d\n", in.Bytes)
	fmt.Fprintf(w, "drops     %d\n", in.Drops)
	if in.Encrypted {
		fmt.Fprintf(w, "encrypted yes\n")
	}
	if in.MaxAge > 0 {
		fmt.Fprintf(w, "max age   %s\n", in.MaxAge)
	}
	for i, l := range in.Links {
		fmt.Fprintf(w, "link %d    %s (link type %d, snaplen %d)\n", i, l.Name, l.LinkType, l.SnapLen)
	}
	return nil
}

func fmtTime(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

func runExtract(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("extract", e)
	dir := fs.String("ring", "", "ring directory (required)")
	from := fs.String("from", "", "window start, RFC 3339 with optional nanoseconds (inclusive)")
	to := fs.String("to", "", "window end, RFC 3339 (exclusive)")
	at := fs.String("at", "", "window centre, RFC 3339 (with -before and -after)")
	before := fs.Duration("before", 0, "window length before -at")
	after := fs.Duration("after", 0, "window length after -at")
	link := fs.String("link", "", "only packets of this link")
	format := fs.String("format", "pcap", "output format: pcap or pcapng")
	expr := fs.String("filter", "", "only packets matching this capture filter expression")
	out := fs.String("o", "", "output file, - for standard output (required)")
	keyDir := keyDirFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" || *out == "" {
		return errors.New("extract: -ring and -o are required")
	}
	if *format != "pcap" && *format != "pcapng" {
		return fmt.Errorf("extract: -format %q: want pcap or pcapng", *format)
	}
	start, end, err := extractWindow(fs, *from, *to, *at, *before, *after)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	r, err := openReadOnly(*dir, *keyDir)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	defer r.Close()
	// The filter reads the frames as a capture file holds them (tcpdump -r).
	spec := export.Spec{Name: "extract", Filter: *expr, Link: *link, Format: *format}
	cut, err := export.NewCutter(r.Links(), []export.Spec{spec}, filter.Offline)
	if err != nil {
		return extractSetupError(err, map[string]string{"filter": *expr, "link": *link, "format": *format})
	}
	dst, commit, abort, err := createOutput(*out, e.stdout)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	comment := fmt.Sprintf("presscap window %s to %s", fmtTime(start), fmtTime(end))
	if err := cut.Open(0, dst, comment); err != nil {
		abort()
		return fmt.Errorf("extract: %w", err)
	}
	st, err := cut.Read(ctx, r, start, end, &ringfs.Pos{}, true, nil)
	if err == nil {
		err = cut.Flush()
	}
	if err == nil {
		err = commit()
	} else {
		abort()
	}
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	unknown := cut.Unknown
	fmt.Fprintf(e.stderr, "extract: window %s to %s: %d packets in the window, %d drops recorded\n",
		fmtTime(start), fmtTime(end), st.Packets, st.Drops)
	if st.Truncated {
		fmt.Fprintf(e.stderr, "extract: warning: truncated (%s): %v of the window is missing; the ring reached back to %s\n",
			st.Reason, time.Duration(st.Missing).Round(time.Millisecond), fmtTime(st.Oldest))
	}
	if unknown > 0 {
		fmt.Fprintf(e.stderr, "extract: warning: %d packets of links added while extracting were left out\n", unknown)
	}
	if st.Corrupt > 0 {
		fmt.Fprintf(e.stderr, "extract: warning: %d corrupt blocks were skipped\n", st.Corrupt)
	}
	return nil
}

// extractSetupError names the flag whose value the cut refused (the
// spec's field: filter, link or format).
func extractSetupError(err error, flags map[string]string) error {
	var se *export.SetupError
	if !errors.As(err, &se) {
		return fmt.Errorf("extract: %w", err)
	}
	if flags[se.Field] == "" {
		return fmt.Errorf("extract: %w", se.Err)
	}
	return fmt.Errorf("extract: -%s %q: %w", se.Field, flags[se.Field], se.Err)
}

// parseTimeFlag reads the value of a time flag (RFC 3339, nanoseconds
// optional) as Unix nanoseconds.
func parseTimeFlag(name, v string) (int64, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return 0, fmt.Errorf("-%s %q: want RFC 3339 time like 2026-01-02T15:04:05.123456789Z", name, v)
	}
	return t.UnixNano(), nil
}

func extractWindow(fs *flag.FlagSet, from, to, at string, before, after time.Duration) (fromNs, toNs int64, err error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case set["from"] || set["to"]:
		if set["at"] || set["before"] || set["after"] {
			return 0, 0, errors.New("give either -from/-to or -at/-before/-after, not both")
		}
		if !set["from"] || !set["to"] {
			return 0, 0, errors.New("-from and -to go together")
		}
		a, err := parseTimeFlag("from", from)
		if err != nil {
			return 0, 0, err
		}
		b, err := parseTimeFlag("to", to)
		if err != nil {
			return 0, 0, err
		}
		if a > b {
			return 0, 0, fmt.Errorf("-from %s is after -to %s", from, to)
		}
		return a, b, nil
	case set["at"]:
		c, err := parseTimeFlag("at", at)
		if err != nil {
			return 0, 0, err
		}
		if before < 0 || after < 0 {
			return 0, 0, errors.New("-before and -after must not be negative")
		}
		return c - int64(before), c + int64(after), nil
	}
	return 0, 0, errors.New("no window: give -from and -to, or -at with -before and -after")
}

// createOutput opens the destination. A file is written under a temporary
// name and renamed when complete, so a failed extraction leaves no partial
// capture that looks finished.
func createOutput(name string, stdout io.Writer) (w io.Writer, commit func() error, abort func(), err error) {
	if name == "-" {
		return stdout, func() error { return nil }, func() {}, nil
	}
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return nil, nil, nil, err
	}
	commit = func() error {
		if err := f.Chmod(0o644); err != nil {
			f.Close()
			os.Remove(f.Name())
			return err
		}
		if err := f.Close(); err != nil {
			os.Remove(f.Name())
			return err
		}
		return os.Rename(f.Name(), name)
	}
	abort = func() {
		f.Close()
		os.Remove(f.Name())
	}
	return f, commit, abort, nil
}

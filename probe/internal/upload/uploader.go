package upload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/presscap/presscap/internal/safefile"
	"github.com/presscap/presscap/probe/internal/clock"
)

// EventKind is what an Event reports, for the LED and the beeper.
type EventKind int

const (
	// Uploading: an attempt starts sending files.
	Uploading EventKind = iota
	// Uploaded: an attempt finished without error (Remaining > 0 when the
	// window ended first).
	Uploaded
	// Failed: an attempt failed; the queue is as it was, minus the files
	// that were completely uploaded. Err says why.
	Failed
)

var eventKindNames = [...]string{Uploading: "uploading", Uploaded: "uploaded", Failed: "failed"}

func (k EventKind) String() string {
	if k >= 0 && int(k) < len(eventKindNames) {
		return eventKindNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is passed to the OnEvent callback.
type Event struct {
	Kind      EventKind
	Files     int   // files uploaded by this attempt
	Bytes     int64 // bytes uploaded by this attempt
	Remaining int   // files left in the queue
	Err       error // for Failed
}

// Status is the uploader's state. The status page serves it as its
// "upload" object (status.json): the JSON names are an API.
type Status struct {
	Enabled  bool   `json:"enabled"`
	Server   string `json:"server,omitempty"`
	QueueDir string `json:"queue_dir"`
	// Files and Bytes are what waits in the queue.
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// NextUpload is the next scheduled start (zero until the clock is
	// synced).
	NextUpload time.Time `json:"next_upload,omitzero"`
	// Running: an upload attempt is in progress.
	Running     bool      `json:"running"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastResult is the last attempt's result in one line: "ok: 3 files,
	// 12.0 MB", "failed: ...", "window ended, 2 files left", "queue
	// empty"; LastError is its error, empty after a success.
	LastResult string `json:"last,omitempty"`
	LastError  string `json:"last_error,omitempty"`
	// PublicKey is the probe's SSH key as an OpenSSH authorized_keys
	// line, for the provider to install on the SFTP server.
	PublicKey string `json:"public_key,omitempty"`
}

// Uploader runs the upload schedule for one queue directory.
type Uploader struct {
	cfg      Config
	queueDir string
	stateDir string
	clock    clock.Time
	sync     clock.Sync // scheduled runs, missed ones included, wait for it
	logf     func(format string, args ...any)
	sched    schedule
	signer   ssh.Signer
	pubKey   string
	kick     chan struct{}
	finish   finisher
	parts    *partJournal

	sessionMu sync.Mutex // one run at a time

	mu       sync.Mutex
	onEvent  func(Event)
	status   Status
	foreign  map[string]bool                             // queue files not sent for their names, logged once while there
	hosts    []string                                    // the host parts sent (SetHosts); nil: any
	fleetID  string                                      // the probe's id (SetID)
	label    string                                      // the provider's label for it (readLabel)
	onConfig func(source string, body []byte, err error) // SetConfigReceiver
}

// stateFile records the last scheduled slot that ran, to catch up missed
// ones after a power cut.
const stateFile = "upload-state.json"

type persisted struct {
	LastSlot time.Time `json:"last_slot"`
}

// New checks cfg, loads or creates the probe's SSH key in stateDir (or
// cfg.KeyFile) and logs the public key. queueDir holds the files to upload.
// tm is the schedule's clock (nil: the real one); scheduled runs wait until
// sync says its time can be trusted (nil: always), after_capture runs do
// not. logf may be nil.
func New(cfg Config, queueDir, stateDir string, tm clock.Time, sync clock.Sync, logf func(format string, args ...any)) (*Uploader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if tm == nil {
		tm = clock.Real{}
	}
	if sync == nil {
		sync = clock.Fixed(true)
	}
	sched, err := newSchedule(cfg)
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	u := &Uploader{
		cfg: cfg, queueDir: queueDir, stateDir: stateDir, clock: tm, sync: sync, logf: logf,
		sched: sched, kick: make(chan struct{}, 1), finish: localFinisher(queueDir, cfg.SentDir),
		parts: newPartJournal(stateDir, logf),
	}
	keyPath := cfg.KeyFile
	if keyPath == "" {
		keyPath = filepath.Join(stateDir, KeyFileName)
	}
	if u.signer, u.pubKey, err = LoadOrCreateKey(keyPath); err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	u.status = Status{Enabled: cfg.Enabled, Server: cfg.Server, PublicKey: u.pubKey}
	logf("upload: public key (install in the server's authorized_keys): %s", u.pubKey)
	return u, nil
}

// PublicKey returns the probe's SSH public key as an authorized_keys line.
func (u *Uploader) PublicKey() string { return u.pubKey }

// OnEvent sets the feedback callback (LED, beeper). It is called from the
// uploader's goroutine and must not block for long.
func (u *Uploader) OnEvent(fn func(Event)) {
	u.mu.Lock()
	u.onEvent = fn
	u.mu.Unlock()
}

// Kick asks for an upload right after a window is saved. It does nothing unless
// after_capture is configured and Run is running; it never blocks.
func (u *Uploader) Kick() {
	if !u.cfg.Enabled || !u.cfg.AfterCapture {
		return
	}
	select {
	case u.kick <- struct{}{}:
	default: // one pending kick covers all windows saved so far
	}
}

// Status returns the current state, including a fresh look at the queue.
func (u *Uploader) Status() Status {
	files, _, _ := u.queue()
	u.mu.Lock()
	s := u.status
	u.mu.Unlock()
	s.QueueDir, s.Files = u.queueDir, len(files)
	for _, f := range files {
		s.Bytes += f.Size
	}
	return s
}

// syncPoll is how often Run looks at Clock.Synced before the first sync;
// maxWait bounds a wait so that clock steps are noticed.
const (
	syncPoll = 5 * time.Second
	maxWait  = time.Minute
)

// Run uploads on schedule until ctx ends: once the clock is synced it runs a
// missed scheduled upload (the device was off at the time), then one every
// day at the configured time; kicks start an after_capture upload at any
// time. It returns nil when ctx ends.
func (u *Uploader) Run(ctx context.Context) error {
	if !u.cfg.Enabled {
		<-ctx.Done()
		return nil
	}
	var next time.Time // zero until synced
	// One pending timer at a time: a kick does not restart the wait.
	var timer <-chan time.Time
	for {
		now := u.clock.Now()
		if next.IsZero() && u.sync.Synced() {
			slot := u.sched.prev(now)
			if last := u.lastSlot(); slot.After(last) {
				if !last.IsZero() || u.queueLen() > 0 {
					u.logf("upload: catching up the run scheduled for %s", slot.Format(time.RFC3339))
				}
				u.runSlot(ctx, slot)
				now = u.clock.Now()
			}
			next = u.sched.next(now)
			u.setNext(next)
			timer = nil
		} else if !next.IsZero() && now.Before(next.Add(-25*time.Hour)) {
			// The clock stepped back a lot: plan from the new time.
			next = u.sched.next(now)
			u.setNext(next)
			timer = nil
		}
		if timer == nil {
			wait := syncPoll
			if !next.IsZero() {
				wait = min(next.Sub(now), maxWait)
			}
			timer = u.clock.After(wait)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-u.kick:
			u.runKick(ctx)
		case <-timer:
			timer = nil
			if !next.IsZero() && !u.clock.Now().Before(next) {
				u.runSlot(ctx, next)
				next = u.sched.next(u.clock.Now())
				u.setNext(next)
			}
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// UploadNow makes one attempt to upload the whole queue, ignoring the
// schedule and the window (for `probe upload -now`). It waits for a run in
// progress to finish first.
func (u *Uploader) UploadNow(ctx context.Context) error {
	u.sessionMu.Lock()
	defer u.sessionMu.Unlock()
	files, err := u.listQueue()
	if err != nil {
		return err
	}
	if len(files) == 0 {
		u.cleanOnly(ctx)
		u.setResult("queue empty", nil, false)
		return nil
	}
	_, _, err = u.attempt(ctx, files, time.Time{})
	return err
}

func (u *Uploader) runSlot(ctx context.Context, slot time.Time) {
	now := u.clock.Now()
	deadline := u.sched.deadline(slot, now)
	giveUp := u.sched.next(slot)
	if !giveUp.After(now) {
		giveUp = now.Add(24 * time.Hour)
	}
	u.session(ctx, deadline, giveUp, u.cfg.Retry.Attempts)
	if ctx.Err() == nil {
		u.saveLastSlot(slot)
	}
}

func (u *Uploader) runKick(ctx context.Context) {
	attempts := u.cfg.Retry.Attempts
	if attempts == 0 {
		attempts = DefaultKickAttempts
	}
	u.session(ctx, time.Time{}, time.Time{}, attempts)
}

// session tries until the queue is empty, the deadline (no new file after
// it) or giveUp (no new attempt after it) passes, or maxAttempts (0: no
// limit) attempts failed, backing off between attempts.
func (u *Uploader) session(ctx context.Context, deadline, giveUp time.Time, maxAttempts int) {
	u.sessionMu.Lock()
	defer u.sessionMu.Unlock()
	backoff := time.Duration(u.cfg.Retry.Initial)
	tried := false
	for attempt := 1; ; attempt++ {
		files, err := u.listQueue()
		if err != nil {
			u.setResult("failed", err, false)
			u.emit(Event{Kind: Failed, Err: err})
			return
		}
		if len(files) == 0 {
			if !tried { // an attempt cleans up as it starts
				u.cleanOnly(ctx)
			}
			// Keep the last real result on the status page.
			return
		}
		if !deadline.IsZero() && !u.clock.Now().Before(deadline) {
			if !tried { // else the last attempt's result says more
				u.setResult(fmt.Sprintf("window ended, %d files left", len(files)), nil, false)
			}
			return
		}
		sent, _, err := u.attempt(ctx, files, deadline)
		tried = true
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if sent == 0 {
				return
			}
			// Windows saved during the upload go in the same run.
			attempt, backoff = 0, time.Duration(u.cfg.Retry.Initial)
			continue
		}
		if errors.Is(err, ErrHostKey) {
			return // retrying cannot help; the configuration must change
		}
		if maxAttempts > 0 && attempt >= maxAttempts {
			u.logf("upload: giving up after %d attempts", attempt)
			return
		}
		at := u.clock.Now().Add(backoff)
		if (!deadline.IsZero() && !at.Before(deadline)) || (!giveUp.IsZero() && !at.Before(giveUp)) {
			u.logf("upload: no time left for another attempt")
			return
		}
		u.logf("upload: attempt %d failed, next in %s", attempt, backoff)
		select {
		case <-ctx.Done():
			return
		case <-u.clock.After(backoff):
		}
		backoff = min(2*backoff, time.Duration(u.cfg.Retry.Max))
	}
}

// attempt connects once and uploads files in order, stopping at the first
// error or, before starting a file, once deadline has passed.
func (u *Uploader) attempt(ctx context.Context, files []QueueFile, deadline time.Time) (int, int64, error) {
	u.mu.Lock()
	u.status.Running = true
	u.status.LastAttempt = u.clock.Now()
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		u.status.Running = false
		u.mu.Unlock()
	}()
	u.emit(Event{Kind: Uploading, Remaining: len(files)})
	sent, bytes, err := u.send(ctx, files, deadline)
	left := u.queueLen()
	if err != nil {
		u.logf("upload: failed after %d files: %v", sent, err)
		u.setResult(fmt.Sprintf("failed after %d of %d files", sent, len(files)), err, false)
		u.emit(Event{Kind: Failed, Files: sent, Bytes: bytes, Remaining: left, Err: err})
		return sent, bytes, err
	}
	msg := fmt.Sprintf("ok: %d files, %.1f MB", sent, float64(bytes)/1e6)
	if sent < len(files) {
		msg = fmt.Sprintf("window ended after %d files (%.1f MB), %d files left", sent, float64(bytes)/1e6, len(files)-sent)
	}
	u.logf("upload: %s", msg)
	u.setResult(msg, nil, true)
	u.emit(Event{Kind: Uploaded, Files: sent, Bytes: bytes, Remaining: left})
	return sent, bytes, nil
}

func (u *Uploader) send(ctx context.Context, files []QueueFile, deadline time.Time) (int, int64, error) {
	c, _, err := dial(ctx, u.cfg, u.signer)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	u.readLabel(c)
	u.removeStaleParts(c)
	var sent int
	var bytes int64
	for _, f := range files {
		if !deadline.IsZero() && !u.clock.Now().Before(deadline) {
			break
		}
		n, err := uploadFile(ctx, c, u.cfg, u.queueDir, f.Name, u.finish, u.parts, nil)
		if errors.Is(err, errLocalGone) {
			continue // taken out of the queue by hand meanwhile
		}
		if err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%w (%v)", ctx.Err(), err)
			}
			return sent, bytes, err
		}
		sent++
		bytes += n
	}
	return sent, bytes, nil
}

// SetHosts limits the upload to names whose host part is one of hosts,
// alone or with a label (filenames.ProducedBy): the probe's own, and those
// it gave files before (another configured hostname, an older label).
// Without it any host part is sent.
func (u *Uploader) SetHosts(hosts ...string) {
	u.mu.Lock()
	u.hosts = append([]string{}, hosts...)
	u.mu.Unlock()
}

// queue is the queue as this uploader sends it, and the regular files it
// leaves for their names.
func (u *Uploader) queue() ([]QueueFile, []string, error) {
	u.mu.Lock()
	hosts := u.hosts
	u.mu.Unlock()
	return scanQueue(u.queueDir, hosts)
}

// maxForeignLogged is how many new names a run's log line about files
// left in the queue shows; the rest are counted.
const maxForeignLogged = 3

// listQueue is the queue for a run: it logs the files left out for their
// names once, a few by name and the rest counted, so the installer learns
// why a file the customer put there stays; a name that went is forgotten.
func (u *Uploader) listQueue() ([]QueueFile, error) {
	files, foreign, err := u.queue()
	if err != nil {
		return files, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	now := make(map[string]bool, len(foreign))
	var fresh []string
	for _, name := range foreign {
		now[name] = true
		if !u.foreign[name] {
			fresh = append(fresh, fmt.Sprintf("%q", name))
		}
	}
	u.foreign = now
	if len(fresh) > 0 {
		more := ""
		if len(fresh) > maxForeignLogged {
			more = fmt.Sprintf(" and %d more", len(fresh)-maxForeignLogged)
			fresh = fresh[:maxForeignLogged]
		}
		u.logf("upload: %s%s in the queue: not files this probe wrote (<host>_<time>_<name>.pcap|pcapng, _report.html, _manifest.json with its own host): not sent, left in place",
			strings.Join(fresh, ", "), more)
	}
	return files, nil
}

// staleParts returns the recorded .part files (see partJournal) whose local
// file is no longer queued: deleted or moved by hand after a cut upload. A
// queued file's .part is not stale: its next upload overwrites it. Nothing
// is stale while the queue directory is missing (a pulled disk says nothing
// about its files).
func (u *Uploader) staleParts() []string {
	names, _, err := u.parts.records()
	if err != nil {
		u.logf("upload: %v", err)
		return nil
	}
	if len(names) == 0 {
		return nil
	}
	if st, err := os.Stat(u.queueDir); err != nil || !st.IsDir() {
		return nil
	}
	files, _, err := u.queue()
	if err != nil {
		return nil
	}
	queued := map[string]bool{}
	for _, f := range files {
		queued[f.Name] = true
	}
	var stale []string
	for _, n := range names {
		if !queued[n] {
			stale = append(stale, n)
		}
	}
	return stale
}

// removeStaleParts deletes on the server the .part files this probe wrote
// whose local file left the queue, so that a cut upload of a file deleted
// by hand leaves nothing behind. It touches only paths recorded by this
// probe for this server and login, and only <name>.part, never a final
// name, and skips a record still locked by its writer (an upload in flight,
// such as probe upload -test in another process; see partJournal).
// Failures are logged and the record kept for the next run; they never fail
// the upload.
func (u *Uploader) removeStaleParts(c *conn) {
	stale := u.staleParts()
	if len(stale) == 0 {
		return
	}
	addr, _ := u.cfg.address()
	for _, name := range stale {
		cl, err := u.parts.claim(name)
		if err != nil {
			u.logf("upload: stale .part clean-up: %v", err)
			continue
		}
		if cl == nil {
			continue // in flight (probe upload -test in another process), done or replaced meanwhile
		}
		u.removeStalePart(c, addr, name, cl)
		cl.release()
	}
}

// removeStalePart removes name's recorded .part, with its record claimed:
// it acts on the record as read under the lock, never on an earlier read,
// which may be of a record replaced since.
func (u *Uploader) removeStalePart(c *conn, addr, name string, cl *claimedRecord) {
	rec := cl.rec
	forget := func() {
		if err := cl.done(); err != nil {
			u.logf("upload: %v", err)
		}
	}
	if path.Base(rec.Path) != name+".part" {
		u.logf("upload: dropping record of %s: %s is not %s.part", name, rec.Path, name)
		forget()
		return
	}
	if rec.Server != addr || rec.User != u.cfg.User {
		u.logf("upload: stale %s was written as %s to %s, not this server: left there", rec.Path, rec.User, rec.Server)
		forget()
		return
	}
	st, err := c.sftp.Lstat(rec.Path)
	if errors.Is(err, fs.ErrNotExist) {
		forget() // gone already (removed by the provider)
		return
	}
	if err == nil && !st.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err == nil {
		err = c.sftp.Remove(rec.Path)
	}
	if err != nil {
		u.logf("upload: cannot remove stale %s on the server (kept for the next run): %v", rec.Path, err)
		return
	}
	forget()
	u.logf("upload: removed stale %s on the server (%d bytes, left by a cut upload; %s is no longer queued)", rec.Path, st.Size(), name)
}

// cleanOnly connects just to remove stale .part files, when there is no
// file to upload; without stale ones it does nothing. Errors are logged.
func (u *Uploader) cleanOnly(ctx context.Context) {
	if len(u.staleParts()) == 0 {
		return
	}
	c, _, err := dial(ctx, u.cfg, u.signer)
	if err != nil {
		u.logf("upload: stale .part clean-up: %v", err)
		return
	}
	defer c.Close()
	u.removeStaleParts(c)
}

func (u *Uploader) queueLen() int {
	files, _, _ := u.queue()
	return len(files)
}

func (u *Uploader) emit(e Event) {
	u.mu.Lock()
	fn := u.onEvent
	u.mu.Unlock()
	if fn != nil {
		fn(e)
	}
}

func (u *Uploader) setNext(t time.Time) {
	u.mu.Lock()
	u.status.NextUpload = t
	u.mu.Unlock()
}

func (u *Uploader) setResult(result string, err error, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.status.LastResult = result
	u.status.LastError = ""
	if err != nil {
		u.status.LastResult = result + ": " + err.Error()
		u.status.LastError = err.Error()
	}
	if ok {
		u.status.LastSuccess = u.clock.Now()
	}
}

func (u *Uploader) lastSlot() time.Time {
	b, err := os.ReadFile(filepath.Join(u.stateDir, stateFile))
	if err != nil {
		return time.Time{}
	}
	var p persisted
	if json.Unmarshal(b, &p) != nil {
		return time.Time{}
	}
	return p.LastSlot
}

func (u *Uploader) saveLastSlot(slot time.Time) {
	b, _ := json.Marshal(persisted{LastSlot: slot})
	if err := safefile.WriteFile(filepath.Join(u.stateDir, stateFile), b, 0o644); err != nil {
		u.logf("upload: %v", err)
	}
}

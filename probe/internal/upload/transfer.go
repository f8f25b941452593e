package upload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"github.com/presscap/presscap/internal/safefile"
	"golang.org/x/crypto/ssh"
)

// Transfer tuning. OpenSSH's sftp-server takes writes of up to 256 KiB;
// with many requests in flight the loopback throughput matches OpenSSH's own
// client (see docs/dev/benchmarks.md).
const (
	maxPacket     = 64 * 1024
	maxConcurrent = 64
	// ioTimeout ends a session whose server stopped answering (a cut line
	// without a TCP reset).
	ioTimeout = 2 * time.Minute
)

// conn is one SSH connection with its SFTP client.
type conn struct {
	ssh      *ssh.Client
	sftp     *sftp.Client
	stopWait func() bool
}

func (c *conn) Close() error {
	c.stopWait()
	if c.sftp != nil {
		c.sftp.Close()
	}
	return c.ssh.Close()
}

// deadlineConn refreshes the deadline before every read and write, so only a
// silent peer times out.
type deadlineConn struct{ net.Conn }

func (d deadlineConn) Read(p []byte) (int, error) {
	d.SetReadDeadline(time.Now().Add(ioTimeout))
	return d.Conn.Read(p)
}

func (d deadlineConn) Write(p []byte) (int, error) {
	d.SetWriteDeadline(time.Now().Add(ioTimeout))
	return d.Conn.Write(p)
}

// authMethods returns how to log in, as configured.
func authMethods(cfg Config, signer ssh.Signer) []ssh.AuthMethod {
	if cfg.Auth == AuthPassword {
		pw := cfg.Password
		return []ssh.AuthMethod{
			ssh.Password(pw),
			// Servers using PAM ask through keyboard-interactive.
			ssh.KeyboardInteractive(func(name, instruction string, questions []string, echos []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range questions {
					answers[i] = pw
				}
				return answers, nil
			}),
		}
	}
	return []ssh.AuthMethod{ssh.PublicKeys(signer)}
}

// dialStep names the stage a dial failed at, for the installer's self test.
type dialStep int

const (
	stepTCP dialStep = iota
	stepHandshake
	stepSFTP
)

// dial connects, checks the host key, logs in and starts the SFTP subsystem.
// Cancelling ctx closes the connection.
func dial(ctx context.Context, cfg Config, signer ssh.Signer, opts ...sftp.ClientOption) (*conn, dialStep, error) {
	addr, err := cfg.address()
	if err != nil {
		return nil, stepTCP, err
	}
	pin, err := parseHostKeyPin(cfg.HostKey)
	if err != nil {
		return nil, stepTCP, fmt.Errorf("upload.host_key: %w", err)
	}
	timeout := time.Duration(cfg.ConnectTimeout)
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, stepTCP, fmt.Errorf("connect to %s: %w", addr, err)
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	// The handshake and login must finish in time; afterwards only silence
	// ends the connection (deadlineConn).
	handshakeTimer := time.AfterFunc(timeout, func() { nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(deadlineConn{nc}, addr, &ssh.ClientConfig{
		User:              cfg.User,
		Auth:              authMethods(cfg, signer),
		HostKeyCallback:   pin.callback(),
		HostKeyAlgorithms: pin.algorithms(),
		Timeout:           timeout,
	})
	timedOut := !handshakeTimer.Stop()
	if err != nil {
		stop()
		nc.Close()
		if ctx.Err() != nil {
			return nil, stepHandshake, ctx.Err()
		}
		if timedOut {
			err = fmt.Errorf("no answer within connect_timeout %s: %w", timeout, err)
		}
		return nil, stepHandshake, fmt.Errorf("ssh to %s as %s: %w", addr, cfg.User, err)
	}
	client := ssh.NewClient(sc, chans, reqs)
	c := &conn{ssh: client, stopWait: stop}
	opts = append([]sftp.ClientOption{
		sftp.MaxPacketUnchecked(maxPacket),
		sftp.MaxConcurrentRequestsPerFile(maxConcurrent),
		sftp.UseConcurrentWrites(true),
	}, opts...)
	c.sftp, err = sftp.NewClient(client, opts...)
	if err != nil {
		c.Close()
		return nil, stepSFTP, fmt.Errorf("start SFTP on %s: %w", addr, err)
	}
	return c, stepSFTP, nil
}

// errLocalGone: the queue file was removed (by hand) after it was listed.
var errLocalGone = errors.New("file left the queue")

// errShortWrite marks a size mismatch on the server.
var errShortWrite = errors.New("size on the server differs")

// finisher is what happens to a local file once the server holds it.
type finisher func(name string) error

// uploadFile sends one queue file: to <dir>/<name>.part, size check, rename
// over <dir>/<name>, size check again, then finish (remove or move) locally.
// The final name on the server only ever holds a complete file, and a stale
// .part from an earlier cut is truncated and rewritten.
// parts (may be nil) records the .part while it exists, so that a run can
// remove it once the local file left the queue (removeStaleParts).
func uploadFile(ctx context.Context, c *conn, cfg Config, queueDir string, name string, finish finisher, parts *partJournal, progress func(int64)) (int64, error) {
	// The queue is on the customer's disk: a name swapped for a symlink
	// or a FIFO after the listing is neither followed nor waited on.
	local, err := safefile.Open(filepath.Join(queueDir, name), os.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, errLocalGone
	}
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", name, err)
	}
	defer local.Close()
	info, err := local.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", name, err)
	}
	size := info.Size()
	part := path.Join(cfg.RemoteDir, name+".part")
	final := path.Join(cfg.RemoteDir, name)

	addr, _ := cfg.address()
	release := parts.add(name, partRecord{Server: addr, User: cfg.User, Path: part})
	defer release()
	rf, err := c.sftp.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return 0, fmt.Errorf("create %s on the server: %w", part, err)
	}
	var r io.Reader = io.LimitReader(local, size)
	r = newRateLimitedReader(ctx, r, cfg.BandwidthLimitKbps)
	if progress != nil {
		r = &progressReader{r: r, fn: progress}
	}
	n, err := rf.ReadFromWithConcurrency(r, maxConcurrent)
	if cerr := rf.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != size {
		err = fmt.Errorf("read %d of %d bytes of %s locally", n, size, name)
	}
	if err != nil {
		// Free the server's disk; whatever is left is overwritten next time.
		if c.sftp.Remove(part) == nil {
			parts.done(name)
		}
		// SSH_FX_FAILURE says nothing; tell the installer when it is space.
		if vfs, verr := c.sftp.StatVFS(cfg.RemoteDir); verr == nil && vfs.FreeSpace() < uint64(size) {
			err = fmt.Errorf("%w (server disk full? %d bytes free, the file has %d)", err, vfs.FreeSpace(), size)
		}
		return n, fmt.Errorf("write %s on the server: %w", part, err)
	}
	if err := checkSize(c, part, size); err != nil {
		if c.sftp.Remove(part) == nil {
			parts.done(name)
		}
		return n, err
	}
	if err := rename(c, part, final); err != nil {
		return n, err
	}
	parts.done(name)
	if err := checkSize(c, final, size); err != nil {
		return n, err
	}
	if err := finish(name); err != nil {
		return n, err
	}
	return n, nil
}

func checkSize(c *conn, p string, want int64) error {
	st, err := c.sftp.Stat(p)
	if err != nil {
		return fmt.Errorf("check size of %s on the server: %w", p, err)
	}
	if st.Size() != want {
		return fmt.Errorf("%w: %s has %d bytes, the local file %d", errShortWrite, p, st.Size(), want)
	}
	return nil
}

// rename moves part over final, replacing a final left by an earlier run
// whose local removal was cut off, so nothing is ever duplicated.
func rename(c *conn, part, final string) error {
	if _, ok := c.sftp.HasExtension("posix-rename@openssh.com"); ok {
		if err := c.sftp.PosixRename(part, final); err != nil {
			return fmt.Errorf("rename %s to %s on the server: %w", part, final, err)
		}
		return nil
	}
	// Plain SFTP rename refuses an existing target.
	if _, err := c.sftp.Lstat(final); err == nil {
		if err := c.sftp.Remove(final); err != nil {
			return fmt.Errorf("replace %s on the server: %w", final, err)
		}
	}
	if err := c.sftp.Rename(part, final); err != nil {
		return fmt.Errorf("rename %s to %s on the server: %w", part, final, err)
	}
	return nil
}

type progressReader struct {
	r  io.Reader
	fn func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.fn(int64(n))
	}
	return n, err
}

// localFinisher removes an uploaded file or moves it to the sent folder.
func localFinisher(queueDir, sentDir string) finisher {
	if sentDir == "" {
		return func(name string) error {
			if err := os.Remove(filepath.Join(queueDir, name)); err != nil {
				return fmt.Errorf("remove uploaded %s: %w", name, err)
			}
			return nil
		}
	}
	if !filepath.IsAbs(sentDir) {
		sentDir = filepath.Join(queueDir, sentDir)
	}
	var once sync.Once
	var mkErr error
	return func(name string) error {
		once.Do(func() { mkErr = os.MkdirAll(sentDir, 0o755) })
		if mkErr != nil {
			return fmt.Errorf("create sent folder: %w", mkErr)
		}
		if err := os.Rename(filepath.Join(queueDir, name), filepath.Join(sentDir, name)); err != nil {
			return fmt.Errorf("move uploaded %s to the sent folder: %w", name, err)
		}
		return nil
	}
}

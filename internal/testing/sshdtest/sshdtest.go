// Package sshdtest runs Debian's OpenSSH server on 127.0.0.1 (or on an address
// in a test's network namespace) for tests: a
// private sshd with its own host key, authorized_keys and internal-sftp.
// It needs root (sshd's privilege separation) and the openssh-server
// package; a missing sshd fails the test, naming the package.
package sshdtest

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/presscap/presscap/internal/testing/netnstest"
	"github.com/presscap/presscap/internal/testing/testtool"
)

// SSHD is the server binary; sshd re-executes itself, so the path is absolute.
const SSHD = "/usr/sbin/sshd"

// Options change the server's configuration.
type Options struct {
	// Port to listen on; 0 picks a free one.
	Port int
	// Password enables password authentication (UsePAM no: checked
	// against /etc/shadow).
	Password bool
	// SFTPLog runs OpenSSH's sftp-server (the same code as internal-sftp)
	// logging every operation (open, close, rename...) to SFTPLog(). It
	// goes through the user's shell: use it with root only.
	SFTPLog bool
	// Extra lines for sshd_config.
	Extra []string
	// Namespace is the network namespace (as `ip netns` names it) sshd
	// runs in, for a server across a test's topology; "" is the test's.
	Namespace string
	// Address is the address sshd listens on; "" is 127.0.0.1.
	Address string
}

// Server is one running (or stopped) sshd.
type Server struct {
	t    testing.TB
	Dir  string // temp dir with config, host key, authorized_keys, log
	Port int
	// HostKey is the server's public host key.
	HostKey ssh.PublicKey
	opts    Options

	mu  sync.Mutex
	cmd *exec.Cmd
	log *bytes.Buffer
}

// Addr returns the listening address and port (127.0.0.1:port unless
// Options.Address).
func (s *Server) Addr() string { return net.JoinHostPort(s.host(), strconv.Itoa(s.Port)) }

func (s *Server) host() string {
	if s.opts.Address != "" {
		return s.opts.Address
	}
	return "127.0.0.1"
}

// KnownHostsLine returns the host key as a known_hosts line.
func (s *Server) KnownHostsLine() string {
	return fmt.Sprintf("[%s]:%d %s", s.host(), s.Port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.HostKey))))
}

// Fingerprint returns the host key's SHA256 fingerprint.
func (s *Server) Fingerprint() string { return ssh.FingerprintSHA256(s.HostKey) }

// Log returns what sshd wrote to stderr so far (for failure messages).
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

// Start writes a configuration and starts sshd -D -e; cleanup stops it and
// every session it spawned.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if _, err := os.Stat(SSHD); err != nil {
		t.Fatalf("%s missing: install the Debian package openssh-server (%v)", SSHD, err)
	}
	testtool.Root(t, "sshd for the upload tests (privilege separation)")
	// sshd refuses to start without its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("create /run/sshd: %v", err)
	}
	dir, err := os.MkdirTemp("", "sshdtest-")
	if err != nil {
		t.Fatal(err)
	}
	// Other users (the password test's user) must reach directories below.
	os.Chmod(dir, 0o755)
	s := &Server{t: t, Dir: dir, Port: opts.Port, opts: opts}
	t.Cleanup(func() {
		s.Stop()
		os.RemoveAll(dir)
	})
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "sshdtest host")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "host_ed25519"), pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	s.HostKey = signer.PublicKey()
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if s.Port == 0 {
		s.Port = FreePort(t)
	}
	s.Up()
	return s
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Authorize adds a public key to the server's authorized_keys.
func (s *Server) Authorize(pub ssh.PublicKey) {
	s.AuthorizeLine(strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))))
}

// AuthorizeLine adds an authorized_keys line.
func (s *Server) AuthorizeLine(line string) {
	f, err := os.OpenFile(filepath.Join(s.Dir, "authorized_keys"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintln(f, line)
}

func (s *Server) config() string {
	pw := "no"
	if s.opts.Password {
		pw = "yes"
	}
	sftp := "internal-sftp"
	if s.opts.SFTPLog {
		sftp = "/usr/lib/openssh/sftp-server -e -l INFO 2>>" + filepath.Join(s.Dir, "sftp.log")
	}
	lines := []string{
		"Port " + strconv.Itoa(s.Port),
		"ListenAddress " + s.host(),
		"HostKey " + filepath.Join(s.Dir, "host_ed25519"),
		"PidFile none",
		"AuthorizedKeysFile " + filepath.Join(s.Dir, "authorized_keys"),
		// The temp dir's modes are not what StrictModes wants.
		"StrictModes no",
		"PermitRootLogin yes",
		"PubkeyAuthentication yes",
		"PasswordAuthentication " + pw,
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"Subsystem sftp " + sftp,
		"LogLevel VERBOSE",
		"MaxStartups 100",
		"MaxSessions 100",
		"UseDNS no",
	}
	lines = append(lines, s.opts.Extra...)
	return strings.Join(lines, "\n") + "\n"
}

// SFTPLog returns what sftp-server logged with Options.SFTPLog.
func (s *Server) SFTPLog() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "sftp.log"))
	return string(b)
}

// Up (re)starts sshd on the same port with the same keys and waits until it
// answers with its banner.
func (s *Server) Up() {
	s.t.Helper()
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return
	}
	cfgPath := filepath.Join(s.Dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(s.config()), 0o644); err != nil {
		s.mu.Unlock()
		s.t.Fatal(err)
	}
	s.log = &bytes.Buffer{}
	cmd := exec.Command(SSHD, "-f", cfgPath, "-D", "-e")
	if s.opts.Namespace != "" {
		// ip execs sshd after entering the namespace: the same process.
		cmd = exec.Command("ip", "netns", "exec", s.opts.Namespace, SSHD, "-f", cfgPath, "-D", "-e")
	}
	cmd.Stderr = &lockedWriter{mu: &s.mu, w: s.log}
	// Own process group, so Stop can end the sessions too.
	// Pdeathsig: a test binary that dies (panic, timeout) takes sshd along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		// Pdeathsig fires when the thread that started sshd ends, not the
		// process, and the Go runtime ends any thread whose goroutine
		// exits locked to it (the service's window followers do): sshd
		// is started from a thread of its own that lasts until it exits.
		runtime.LockOSThread()
		defer close(exited)
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
	}()
	if err := <-started; err != nil {
		s.mu.Unlock()
		s.t.Fatalf("start sshd: %v", err)
	}
	s.cmd = cmd
	s.mu.Unlock()

	deadline := time.Now().Add(30 * time.Second) // a loaded CI machine starts sshd slowly
	for {
		select {
		case <-exited:
			s.t.Fatalf("sshd exited at start:\n%s", s.Log())
		default:
		}
		if s.banner() {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("sshd did not answer on %s within 30 s:\n%s", s.Addr(), s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// banner tells whether sshd answers with its banner.
func (s *Server) banner() bool {
	var line string
	dial := func() error {
		c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		line, _ = bufio.NewReader(c).ReadString('\n')
		return nil
	}
	if s.opts.Namespace != "" {
		netnstest.DoIn(s.opts.Namespace, dial)
	} else {
		dial()
	}
	return strings.HasPrefix(line, "SSH-")
}

// Stop kills sshd and all its sessions; the port is closed afterwards.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	// Sessions stay in the listener's process group (sshd -D does not
	// call setsid for them).
	pids := s.descendants(cmd.Process.Pid)
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for i := 0; i < 500; i++ {
		if syscall.Kill(cmd.Process.Pid, 0) != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// KillSessions kills every session process (cutting the connections
// mid-transfer) and leaves the listener running. It returns how many
// processes it killed.
func (s *Server) KillSessions() int {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		return 0
	}
	pids := s.descendants(cmd.Process.Pid)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return len(pids)
}

// descendants lists the processes below pid, from /proc.
func (s *Server) descendants(root int) []int {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name is in parentheses and may hold spaces.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

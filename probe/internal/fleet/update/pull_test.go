package update

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/presscap/presscap/internal/release"
	"github.com/presscap/presscap/internal/testing/sshdtest"
)

// sftpRemote is the adapter the service will use over the upload's client.
type sftpRemote struct {
	c *sftp.Client
	// wrap, if set, sees every opened file.
	wrap func(path string, f File) File
}

func (r sftpRemote) Open(p string) (File, error) {
	f, err := r.c.Open(p)
	if err != nil {
		return nil, err
	}
	if r.wrap != nil {
		return r.wrap(p, f), nil
	}
	return f, nil
}

// countingFile counts the bytes read and runs cut once after limit.
type countingFile struct {
	File
	n     *atomic.Int64
	limit int64
	cut   func()
}

func (c *countingFile) Read(b []byte) (int, error) {
	n, err := c.File.Read(b)
	if c.n.Add(int64(n)) >= c.limit && c.cut != nil {
		c.cut()
		c.cut = nil
	}
	return n, err
}

type fixture struct {
	srv    *sshdtest.Server
	signer ssh.Signer
	dir    string // the channel's directory on the server
	key    ed25519.PrivateKey
	pub    ed25519.PublicKey
	root   []byte
	boot   []byte
}

func newFixture(t *testing.T) *fixture {
	if testing.Short() {
		t.Skip("needs root and sshd (openssh-server)")
	}
	srv := sshdtest.Start(t, sshdtest.Options{})
	_, ck, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(ck)
	if err != nil {
		t.Fatal(err)
	}
	srv.Authorize(signer.PublicKey())
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	f := &fixture{srv: srv, signer: signer, dir: ReleaseDir(filepath.Join(srv.Dir, "in"), "stable"), key: key, pub: pub,
		root: make([]byte, 6<<20+123), boot: make([]byte, 300<<10)}
	rand.Read(f.root)
	rand.Read(f.boot)
	f.publish(t, "presscap", "2026-12-06T22:00:00Z", key)
	return f
}

// publish writes a bundle into the channel as the provider uploads it.
func (f *fixture) publish(t *testing.T, instance, version string, key ed25519.PrivateKey) {
	t.Helper()
	os.MkdirAll(f.dir, 0o755)
	m := &release.Manifest{Format: release.Format, Version: version, Instance: instance, RollbackSafe: true,
		Created: time.Date(2026, 12, 6, 22, 5, 0, 0, time.UTC), BootFiles: map[string]string{}}
	for _, p := range []struct {
		name, file string
		b          []byte
	}{{release.PartRoot, "root.squashfs", f.root}, {release.PartBoot, "boot.fat", f.boot}} {
		if err := os.WriteFile(filepath.Join(f.dir, p.file), p.b, 0o644); err != nil {
			t.Fatal(err)
		}
		pt, _ := release.NewPart(p.name, p.file, bytes.NewReader(p.b))
		m.Parts = append(m.Parts, pt)
	}
	mb, sig, err := release.Sign(m, key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(f.dir, release.ManifestFile), mb, 0o644)
	os.WriteFile(filepath.Join(f.dir, release.SignatureFile), sig, 0o644)
}

func (f *fixture) connect(t *testing.T) *sftp.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", f.srv.Addr(), &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(f.signer)},
		HostKeyCallback: ssh.FixedHostKey(f.srv.HostKey), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close(); c.Close() })
	return sc
}

func (f *fixture) puller(t *testing.T, r Remote, local string) *Puller {
	return &Puller{Remote: r, Dir: f.dir, Local: local, Keys: []ed25519.PublicKey{f.pub}, Instance: "presscap", Running: "2026-12-01T00:00:00Z"}
}

// TestPullResumesAfterCut cuts the SSH connection (sshd's session killed)
// 1 MiB into the root part; the next connection fetches only the rest, and
// the parts are the server's, byte for byte.
func TestPullResumesAfterCut(t *testing.T) {
	f := newFixture(t)
	local := filepath.Join(t.TempDir(), "release")
	var first atomic.Int64
	r1 := sftpRemote{c: f.connect(t), wrap: func(p string, file File) File {
		if strings.HasSuffix(p, "root.squashfs") {
			return &countingFile{File: file, n: &first, limit: 1 << 20, cut: func() { f.srv.KillSessions() }}
		}
		return file
	}}
	p := f.puller(t, r1, local)
	m, err := p.Check()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Fetch(context.Background(), m, []string{release.PartRoot, release.PartBoot}); err == nil {
		t.Fatal("Fetch succeeded although the connection was cut")
	}
	partial := filepath.Join(local, m.Version, "root.squashfs"+partSuffix)
	st, err := os.Stat(partial)
	if err != nil || st.Size() < 1<<20 || st.Size() >= int64(len(f.root)) {
		t.Fatalf("after the cut: %v, %v; want a partial root of at least 1 MiB", st, err)
	}
	have := st.Size()

	var second atomic.Int64
	r2 := sftpRemote{c: f.connect(t), wrap: func(p string, file File) File {
		if strings.HasSuffix(p, "root.squashfs") {
			return &countingFile{File: file, n: &second, limit: 1 << 62}
		}
		return file
	}}
	p.Remote = r2
	got, err := p.Fetch(context.Background(), m, []string{release.PartRoot, release.PartBoot})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len(f.root)) - have; second.Load() != want {
		t.Errorf("second connection read %d bytes of root, want the remaining %d", second.Load(), want)
	}
	for name, want := range map[string][]byte{release.PartRoot: f.root, release.PartBoot: f.boot} {
		b, err := os.ReadFile(got[name])
		if err != nil || !bytes.Equal(b, want) {
			t.Errorf("part %s: %d bytes, %v; want the server's %d", name, len(b), err, len(want))
		}
	}
	if _, err := os.Stat(partial); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("partial file left: %v", err)
	}
}

func TestPullRefuses(t *testing.T) {
	f := newFixture(t)
	r := sftpRemote{c: f.connect(t)}
	local := filepath.Join(t.TempDir(), "release")
	p := f.puller(t, r, local)

	// Space is checked before the first byte.
	p.Avail = func(string) (int64, error) { return SpaceMargin + 1<<20, nil }
	m, err := p.Check()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Fetch(context.Background(), m, []string{release.PartRoot}); err == nil || !strings.Contains(err.Error(), "needs 6 MiB more") {
		t.Fatalf("Fetch with 1 MiB free: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(local, m.Version)); len(ents) != 0 {
		t.Errorf("Fetch without space wrote %v", ents)
	}
	p.Avail = nil

	// A part changed on the server after signing: refused, nothing kept.
	bad := bytes.Clone(f.boot)
	bad[1000] ^= 0x80
	os.WriteFile(filepath.Join(f.dir, "boot.fat"), bad, 0o644)
	if _, err := p.Fetch(context.Background(), m, []string{release.PartBoot}); !errors.Is(err, release.ErrHash) {
		t.Fatalf("corrupted part: %v, want ErrHash", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(local, m.Version)); len(ents) != 0 {
		t.Errorf("a corrupted part left %v", ents)
	}

	// Signed by another key, for another instance, not newer.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	f.publish(t, "presscap", "2026-12-06T22:00:00Z", other)
	if _, err := p.Check(); !errors.Is(err, release.ErrSignature) {
		t.Errorf("other key: %v, want ErrSignature", err)
	}
	f.publish(t, "presscap-x86", "2026-12-06T22:00:00Z", f.key)
	if _, err := p.Check(); !errors.Is(err, release.ErrOtherInstance) {
		t.Errorf("other instance: %v", err)
	}
	f.publish(t, "presscap", "2026-11-30T00:00:00Z", f.key)
	if _, err := p.Check(); !errors.Is(err, release.ErrNotNewer) {
		t.Errorf("older: %v", err)
	}
	os.RemoveAll(f.dir)
	if _, err := p.Check(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty channel: %v, want fs.ErrNotExist", err)
	}
}

package update

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"github.com/presscap/presscap/internal/release"
)

// ReleaseDir is the channel's directory below upload.remote_dir.
func ReleaseDir(remoteDir, channel string) string {
	return path.Join(remoteDir, "fleet", "release", channel)
}

// File is an open file on the server (*sftp.File is one).
type File interface {
	io.ReadSeekCloser
}

// Remote opens files on the server: the upload's SFTP connection, through
// a one-line adapter over *sftp.Client.Open.
type Remote interface {
	Open(path string) (File, error)
}

// Puller fetches the channel's release into Local.
type Puller struct {
	Remote Remote
	// Dir is the channel's directory on the server (ReleaseDir).
	Dir string
	// Local is where parts are kept until installed (under /perm);
	// Fetch removes older releases' files from it.
	Local string
	// Keys are release.public_keys.
	Keys []ed25519.PublicKey
	// Instance and Running (the build timestamp) decide what is newer and
	// for this probe.
	Instance, Running string
	// Avail reports the bytes free for an unprivileged writer in a
	// directory (default: statfs).
	Avail func(dir string) (int64, error)
}

// SpaceMargin stays free in /perm after a download: the probe's own state
// (configuration, keys, queue bookkeeping) lives there too.
const SpaceMargin = 32 << 20

// Check reads the channel's manifest and signature and returns the
// manifest if it verifies and may be installed here: errors wrap
// release.ErrSignature, ErrNotNewer, ErrOtherInstance, ErrNotRollback,
// and fs.ErrNotExist when the channel has no release.
func (p *Puller) Check() (*release.Manifest, error) {
	mb, err := p.readSmall(release.ManifestFile)
	if err != nil {
		return nil, err
	}
	sig, err := p.readSmall(release.SignatureFile)
	if err != nil {
		return nil, err
	}
	m, err := release.Verify(mb, sig, p.Keys)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path.Join(p.Dir, release.ManifestFile), err)
	}
	if err := release.Check(m, p.Instance, p.Running); err != nil {
		return m, err
	}
	return m, nil
}

func (p *Puller) readSmall(name string) ([]byte, error) {
	f, err := p.Remote.Open(path.Join(p.Dir, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, release.MaxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path.Join(p.Dir, name), err)
	}
	if len(b) > release.MaxManifestSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path.Join(p.Dir, name), release.MaxManifestSize)
	}
	return b, nil
}

// partSuffix marks a part still being downloaded.
const partSuffix = ".part"

// Fetch downloads the named parts of m into Local/<version>/ and returns
// their local paths. A part cut off by a lost connection continues from
// where it stopped at the next call; the free space is checked before
// the first byte; every part is verified against the manifest before it
// gets its final name, and one that does not match is deleted (wrapping
// release.ErrHash) so the next call starts it again.
func (p *Puller) Fetch(ctx context.Context, m *release.Manifest, names []string) (map[string]string, error) {
	dir := filepath.Join(p.Local, m.Version)
	if err := p.clean(m.Version); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var parts []release.Part
	var need int64
	for _, n := range names {
		pt, ok := m.Part(n)
		if !ok {
			return nil, fmt.Errorf("release %s has no part %q", m.Version, n)
		}
		parts = append(parts, pt)
		if _, err := os.Stat(filepath.Join(dir, pt.File)); err == nil {
			continue
		}
		have := int64(0)
		if st, err := os.Stat(filepath.Join(dir, pt.File+partSuffix)); err == nil && st.Size() <= pt.Size {
			have = st.Size()
		}
		need += pt.Size - have
	}
	avail := p.Avail
	if avail == nil {
		avail = statfsAvail
	}
	free, err := avail(dir)
	if err != nil {
		return nil, fmt.Errorf("free space in %s: %w", dir, err)
	}
	if free < need+SpaceMargin {
		return nil, fmt.Errorf("release %s needs %d MiB more in %s (and %d MiB to spare), %d MiB are free", m.Version, need>>20, dir, SpaceMargin>>20, free>>20)
	}
	out := map[string]string{}
	for _, pt := range parts {
		final := filepath.Join(dir, pt.File)
		if _, err := os.Stat(final); err != nil {
			if err := p.fetchPart(ctx, pt, final); err != nil {
				return nil, err
			}
		}
		out[pt.Name] = final
	}
	return out, nil
}

// clean removes other releases' directories from Local.
func (p *Puller) clean(keep string) error {
	ents, err := os.ReadDir(p.Local)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Name() != keep {
			if err := os.RemoveAll(filepath.Join(p.Local, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *Puller) fetchPart(ctx context.Context, pt release.Part, final string) error {
	tmp := final + partSuffix
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if have > pt.Size {
		if err := f.Truncate(0); err != nil {
			return err
		}
		have, _ = f.Seek(0, io.SeekStart)
	}
	if have < pt.Size {
		src := path.Join(p.Dir, pt.File)
		r, err := p.Remote.Open(src)
		if err != nil {
			return fmt.Errorf("part %s: %w", pt.Name, err)
		}
		defer r.Close()
		if _, err := r.Seek(have, io.SeekStart); err != nil {
			return fmt.Errorf("%s: seek to %d: %w", src, have, err)
		}
		if err := copyCtx(ctx, f, io.LimitReader(r, pt.Size-have)); err != nil {
			return fmt.Errorf("%s from byte %d: %w", src, have, err)
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := release.VerifyPart(pt, f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, final)
}

// copyCtx copies in 256 KiB steps, stopping between steps when ctx ends.
func copyCtx(ctx context.Context, dst io.Writer, src io.Reader) error {
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func statfsAvail(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

package ringfs

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"

	"github.com/presscap/presscap/internal/safefile"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/sys/unix"
)

// A sealed ring (Options.Encrypt) encrypts and authenticates every block's
// records with ChaCha20-Poly1305 (fast without the ARMv8 AES instructions a
// Pi 4 lacks), under a random key drawn at creation and kept in a key file
// in Options.KeyDir (the SD card's /perm), never on the ring's disk. The
// block header stays in clear (the index, recovery and the checksum over
// the stored bytes work without the key) but is authenticated with the
// block's slot and offset, so a block is accepted only where it was
// written. The nonce is the key file's writer epoch, bumped and made
// durable before every writer session writes a block, and the block's
// sequence number, which only grows within a session: it never repeats
// under one key, even after a power cut lost blocks whose numbers are
// used again.

// Errors of a sealed ring's key.
var (
	// ErrNoKey: the ring is sealed and its key file is not in KeyDir.
	ErrNoKey = errors.New("the key of an encrypted ring is missing")
	// ErrWrongKey: the key file is not this ring's key.
	ErrWrongKey = errors.New("the key is not the encrypted ring's")
)

const (
	keyFileMax = 4 << 10
	sealTag    = chacha20poly1305.Overhead
)

// keyFile is a sealed ring's key file.
type keyFile struct {
	RingID string `json:"ring_id"` // hex, as in the file name
	Key    []byte `json:"key"`     // chacha20poly1305.KeySize bytes
	// Epoch is the last writer session's epoch (the nonce's first part).
	Epoch uint32 `json:"epoch"`
}

// sealer seals and opens one ring's blocks.
type sealer struct {
	aead  cipher.AEAD
	epoch uint32 // the writer's; readers use each block's own
}

// KeyPath is where a ring's key file lives in keyDir.
func KeyPath(keyDir string, ringID uint64) string {
	return filepath.Join(keyDir, fmt.Sprintf("ring-%016x.key", ringID))
}

// keyID identifies a key in ring.json without revealing it.
func keyID(key []byte) string {
	h := sha256.Sum256(append([]byte("presscap ring key id\x00"), key...))
	return hex.EncodeToString(h[:16])
}

// newKey draws a ring's key and writes its key file (epoch 0: the first
// writer session takes 1). The file is made durable before the ring
// refers to it.
func newKey(keyDir string, ringID uint64) (id string, err error) {
	if keyDir == "" {
		return "", errors.New("encrypted ring: no key directory (Options.KeyDir) to keep the key in")
	}
	kf := keyFile{RingID: fmt.Sprintf("%016x", ringID), Key: make([]byte, chacha20poly1305.KeySize)}
	if _, err := rand.Read(kf.Key); err != nil {
		return "", fmt.Errorf("encrypted ring: draw key: %w", err)
	}
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		return "", fmt.Errorf("encrypted ring: key directory: %w", err)
	}
	if err := writeKey(keyDir, ringID, &kf); err != nil {
		return "", err
	}
	return keyID(kf.Key), nil
}

func writeKey(keyDir string, ringID uint64, kf *keyFile) error {
	b, err := json.Marshal(kf)
	if err != nil {
		return err
	}
	if err := safefile.WriteFile(KeyPath(keyDir, ringID), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("encrypted ring: key: %w", err)
	}
	return safefile.SyncDir(keyDir)
}

// loadSealer reads the key of the sealed ring m from keyDir; a writer
// bumps the key file's epoch (durably) for its session.
func loadSealer(keyDir string, m *meta, writer bool) (*sealer, error) {
	if keyDir == "" {
		return nil, fmt.Errorf("ring is encrypted and no key directory was given: %w", ErrNoKey)
	}
	path := KeyPath(keyDir, m.RingID)
	if writer {
		// The epoch is read, bumped and written under a lock on the key
		// directory, so that two writers opened at once (a mistake, but
		// one the disk cannot prevent) still never share an epoch.
		unlock, err := lockDir(keyDir)
		if err != nil {
			return nil, fmt.Errorf("ring is encrypted: lock the key directory: %w", err)
		}
		defer unlock()
	}
	b, err := safefile.ReadFile(path, keyFileMax)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("ring is encrypted and %s does not exist (the key stays on the probe that made the ring): %w", path, ErrNoKey)
	}
	if err != nil {
		return nil, fmt.Errorf("ring is encrypted: read its key: %w", err)
	}
	var kf keyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return nil, fmt.Errorf("ring is encrypted: key file %s: %v: %w", path, err, ErrWrongKey)
	}
	if kf.RingID != fmt.Sprintf("%016x", m.RingID) || len(kf.Key) != chacha20poly1305.KeySize ||
		subtle.ConstantTimeCompare([]byte(keyID(kf.Key)), []byte(m.KeyID)) != 1 {
		return nil, fmt.Errorf("ring is encrypted: key file %s does not hold ring %016x's key (key_id %s): %w", path, m.RingID, m.KeyID, ErrWrongKey)
	}
	aead, err := chacha20poly1305.New(kf.Key)
	if err != nil {
		return nil, err
	}
	s := &sealer{aead: aead}
	if writer {
		if kf.Epoch == math.MaxUint32 {
			return nil, fmt.Errorf("ring is encrypted: key file %s: epochs used up (create the ring again)", path)
		}
		kf.Epoch++
		if err := writeKey(keyDir, m.RingID, &kf); err != nil {
			return nil, err
		}
		s.epoch = kf.Epoch
	}
	return s, nil
}

// sealAD is a block's authenticated data: its header from the generation
// on (the checksum field excluded, since it is computed over the sealed
// bytes) and where in the ring it belongs.
type sealAD [blockHdrSize - 8 + 12]byte

func (a *sealAD) fill(b []byte, slot int, off int64) []byte {
	n := copy(a[:], b[8:blockHdrSize])
	binary.LittleEndian.PutUint32(a[n:], uint32(slot))
	binary.LittleEndian.PutUint64(a[n+4:], uint64(off))
	return a[:]
}

func nonce(n *[chacha20poly1305.NonceSize]byte, epoch uint32, seq uint64) []byte {
	binary.LittleEndian.PutUint32(n[0:], epoch)
	binary.LittleEndian.PutUint64(n[4:], seq)
	return n[:]
}

// seal encrypts the block in b in place (its header's payloadLen already
// counts the tag) and writes its header and checksum.
func (s *sealer) seal(b []byte, h *blockHeader, slot int, off int64) {
	var ad sealAD
	var n [chacha20poly1305.NonceSize]byte
	h.epoch = s.epoch
	putBlockHeader(b, h, 0) // the fields the AD covers
	plain := b[blockHdrSize : blockHdrSize+int(h.payloadLen)-sealTag]
	s.aead.Seal(plain[:0], nonce(&n, h.epoch, h.seq), plain, ad.fill(b, slot, off))
	putBlockHeader(b, h, payloadCRC(b, h.payloadLen))
}

// open authenticates and decrypts a block whose header and checksum were
// checked, in place, and returns its records' bytes.
func (s *sealer) open(b []byte, h *blockHeader, slot int, off int64) ([]byte, error) {
	if h.payloadLen < sealTag {
		return nil, fmt.Errorf("block %d: sealed payload of %d bytes, shorter than the tag", h.seq, h.payloadLen)
	}
	var ad sealAD
	var n [chacha20poly1305.NonceSize]byte
	p := b[blockHdrSize : blockHdrSize+int(h.payloadLen)]
	plain, err := s.aead.Open(p[:0], nonce(&n, h.epoch, h.seq), p, ad.fill(b, slot, off))
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", h.seq, errAuth)
	}
	return plain, nil
}

var errAuth = errors.New("authentication failed (wrong key, or the block was altered or moved)")

// Encrypted says whether the ring's blocks are sealed.
func (r *Ring) Encrypted() bool { return r.seal != nil }

// lockDir takes an exclusive flock on dir until unlock.
func lockDir(dir string) (unlock func(), err error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return func() { unix.Close(fd) }, nil
}

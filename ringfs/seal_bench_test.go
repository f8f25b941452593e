package ringfs

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// BenchmarkSealBlock compares the two AEADs a ring could use, sealing one
// block in place as the writer does (ns/op is per block; MB/s per byte).
// On amd64 both have assembly; the Pi 4's Cortex-A72 has no ARMv8 AES
// instructions, so AES-GCM falls back to Go code there (run the arm64
// build under qemu-user for the instruction-level comparison).
func BenchmarkSealBlock(b *testing.B) {
	key := make([]byte, 32)
	cc, err := chacha20poly1305.New(key)
	if err != nil {
		b.Fatal(err)
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		b.Fatal(err)
	}
	gcm, err := cipher.NewGCM(blk)
	if err != nil {
		b.Fatal(err)
	}
	for _, a := range []struct {
		name string
		aead cipher.AEAD
	}{{"chacha20poly1305", cc}, {"aes256gcm", gcm}} {
		for _, size := range []int{64 << 10, 1 << 20} {
			b.Run(fmt.Sprintf("%s/%dKiB", a.name, size>>10), func(b *testing.B) {
				buf := make([]byte, size+a.aead.Overhead())
				nonce := make([]byte, a.aead.NonceSize())
				ad := make([]byte, 84)
				b.SetBytes(int64(size))
				for i := range b.N {
					nonce[4] = byte(i)
					a.aead.Seal(buf[:0], nonce, buf[:size], ad)
				}
			})
		}
	}
}

package ringfs

import (
	"context"
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

// BenchmarkReadRing reads a full 64 MiB ring of 1500-byte packets (from
// the page cache), clear and encrypted: the ratio is the cost of opening
// the seals on an extraction.
func BenchmarkReadRing(b *testing.B) {
	for _, encrypt := range []bool{false, true} {
		b.Run(fmt.Sprintf("encrypted=%v", encrypt), func(b *testing.B) {
			o := testOpts()
			o.Encrypt, o.KeyDir, o.BlockSize = encrypt, b.TempDir(), 0
			r, err := Create(b.TempDir(), o)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			d := make([]byte, 1500)
			var n int64
			for ; n < 25000; n++ {
				if err := r.Append(Record{Time: base + n, OrigLen: 1500, Data: d}); err != nil {
					b.Fatal(err)
				}
			}
			if err := r.Flush(); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(n * 1500)
			b.ResetTimer()
			for range b.N {
				st, err := r.Read(context.Background(), base, base+n, func(Record) error { return nil })
				if err != nil || st.Packets != uint64(n) {
					b.Fatal(st, err)
				}
			}
		})
	}
}

package upload_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/sshdtest"
	"github.com/presscap/presscap/internal/testing/testtool"
	"github.com/presscap/presscap/probe/internal/upload"
)

// BenchmarkUploadVsOpenSSH uploads a 100 MiB queue (10 files of 10 MiB) to
// the loopback sshd with the Uploader and with OpenSSH's `sftp -b` client,
// alternating, and reports the median throughput of each and their ratio
// (ours / OpenSSH's; the goal is ≥ 0.8). Run by `make bench-upload`.
func BenchmarkUploadVsOpenSSH(b *testing.B) {
	const files, size, rounds = 10, 10 << 20, 5
	sftp := testtool.Path(b, "sftp", "openssh-client")
	srv := sshdtest.Start(b, sshdtest.Options{})
	remote := filepath.Join(srv.Dir, "in")
	os.Mkdir(remote, 0o755)
	src, queue, state := b.TempDir(), b.TempDir(), b.TempDir()
	var names []string
	buf := make([]byte, size)
	for i := 0; i < files; i++ {
		rand.Read(buf)
		n := fmt.Sprintf("probe_20261127T0200%02d.000Z_all.pcap", i)
		if err := os.WriteFile(filepath.Join(src, n), buf, 0o644); err != nil {
			b.Fatal(err)
		}
		names = append(names, n)
	}
	keyPath := filepath.Join(state, upload.KeyFileName)
	_, pub, err := upload.LoadOrCreateKey(keyPath)
	if err != nil {
		b.Fatal(err)
	}
	srv.AuthorizeLine(pub)
	cfg := upload.DefaultConfig()
	cfg.Enabled, cfg.Server, cfg.User, cfg.RemoteDir, cfg.HostKey = true, srv.Addr(), "root", remote, srv.KnownHostsLine()

	knownHosts := filepath.Join(state, "known_hosts")
	os.WriteFile(knownHosts, []byte(srv.KnownHostsLine()+"\n"), 0o644)
	batch := filepath.Join(state, "batch")
	var sb strings.Builder
	fmt.Fprintf(&sb, "cd %s\nlcd %s\n", remote, src)
	for _, n := range names {
		fmt.Fprintf(&sb, "put %s\n", n)
	}
	os.WriteFile(batch, []byte(sb.String()), 0o644)

	clean := func() {
		os.RemoveAll(remote)
		os.Mkdir(remote, 0o755)
	}
	ours := func() time.Duration {
		clean()
		for _, n := range names { // hard links: the upload removes only these
			if err := os.Link(filepath.Join(src, n), filepath.Join(queue, n)); err != nil {
				b.Fatal(err)
			}
		}
		u, err := upload.New(cfg, queue, state, nil, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := u.UploadNow(context.Background()); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	openssh := func(cipher ...string) time.Duration {
		clean()
		args := append([]string{"-q", "-b", batch, "-i", keyPath, "-P", fmt.Sprint(srv.Port),
			"-o", "UserKnownHostsFile=" + knownHosts, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"}, cipher...)
		cmd := exec.Command(sftp, append(args, "root@127.0.0.1")...)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("sftp -b: %v\n%s", err, out)
		}
		return time.Since(start)
	}
	check := func() {
		for _, n := range names {
			st, err := os.Stat(filepath.Join(remote, n))
			if err != nil || st.Size() != size {
				b.Fatalf("%s not complete on the server: %v", n, err)
			}
		}
	}
	total := float64(files * size)
	for i := 0; i < b.N; i++ {
		// x/crypto/ssh prefers aes128-gcm, OpenSSH's client chacha20-poly1305:
		// OpenSSH is measured with its default and with ours.
		var a, o, g []float64
		mib := func(d time.Duration) float64 { return total / d.Seconds() / (1 << 20) }
		for r := 0; r < rounds; r++ {
			a = append(a, mib(ours()))
			check()
			o = append(o, mib(openssh()))
			check()
			g = append(g, mib(openssh("-c", "aes128-gcm@openssh.com")))
			check()
		}
		ma, mo, mg := median(a), median(o), median(g)
		b.ReportMetric(ma, "ours-MiB/s")
		b.ReportMetric(mo, "sftp-MiB/s")
		b.ReportMetric(mg, "sftp-aesgcm-MiB/s")
		b.ReportMetric(ma/mo, "ratio")
		b.ReportMetric(ma/mg, "ratio-aesgcm")
		b.Logf("100 MiB in 10 files, median of %d rounds (MiB/s): ours %.1f %v; sftp -b (chacha20-poly1305) %.1f %v, ratio %.2f; sftp -b -c aes128-gcm %.1f %v, ratio %.2f",
			rounds, ma, round(a), mo, round(o), ma/mo, mg, round(g), ma/mg)
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func round(v []float64) []string {
	var out []string
	for _, x := range v {
		out = append(out, fmt.Sprintf("%.0f", x))
	}
	return out
}

package enroll

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

func keyLine(t *testing.T) (string, string) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " presscap@probe", ssh.FingerprintSHA256(k)
}

// TestListAndAccept: only one plain ed25519 line per file is accepted;
// other files are listed with their problem; an account holding another
// key is shown as replaced; accept replaces it and removes the pending
// file; reject removes one; ids that could be paths are refused.
func TestListAndAccept(t *testing.T) {
	dir := t.TempDir()
	s := Server{Pending: filepath.Join(dir, "enroll"), Keys: filepath.Join(dir, "keys")}
	os.MkdirAll(s.Pending, 0o755)
	good, fp := keyLine(t)
	other, otherFP := keyLine(t)
	rk, _ := rsa.GenerateKey(rand.Reader, 1024)
	rpub, _ := ssh.NewPublicKey(&rk.PublicKey)
	files := map[string]string{
		"10000000aaaaaaaa.pub":      good + "\n",
		"10000000bbbbbbbb.pub":      good + "\n" + other + "\n",
		"10000000cccccccc.pub":      `command="sh" ` + other + "\n",
		"10000000dddddddd.pub":      string(ssh.MarshalAuthorizedKey(rpub)),
		"10000000eeeeeeee.pub":      "junk\n",
		"10000000ffff0000.pub":      other + "\n",
		"10000000aaaaaaaa.pub.part": good,
		"..pub":                     good,
	}
	for n, b := range files {
		os.WriteFile(filepath.Join(s.Pending, n), []byte(b), 0o644)
	}
	os.MkdirAll(s.Keys, 0o755)
	os.WriteFile(filepath.Join(s.Keys, DefaultAccount("10000000ffff0000")), []byte(good+"\n"), 0o644)
	ps, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"10000000aaaaaaaa": Pending, "10000000bbbbbbbb": "more than one line", "10000000cccccccc": "options",
		"10000000dddddddd": "ssh-rsa", "10000000eeeeeeee": "not a public key", "10000000ffff0000": Replaces,
	}
	if len(ps) != len(want) {
		t.Fatalf("listed %+v, want %d", ps, len(want))
	}
	for _, p := range ps {
		if got := p.State + p.Problem; !strings.Contains(got, want[p.ID]) {
			t.Errorf("%s: %q, want %q", p.ID, got, want[p.ID])
		}
	}
	if ps[0].Account != "presscap-aaaaaaaa" || ps[0].Fingerprint != fp {
		t.Errorf("first: %+v", ps[0])
	}
	for _, id := range []string{"10000000bbbbbbbb", "../x", "10000000AAAAAAAA"} {
		if _, err := s.Accept(id, ""); err == nil {
			t.Errorf("accepted %s", id)
		}
	}
	if _, err := s.Accept("10000000ffff0000", ""); err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Errorf("accepted without a fingerprint: %v", err)
	}
	if _, err := s.Accept("10000000ffff0000", otherFP); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(s.Keys, "presscap-ffff0000"))
	if !strings.HasPrefix(string(b), strings.TrimSuffix(other, " presscap@probe")) || strings.Count(string(b), "\n") != 1 {
		t.Errorf("account's keys after accept: %q", b)
	}
	if _, err := os.Stat(filepath.Join(s.Pending, "10000000ffff0000.pub")); err == nil {
		t.Error("accepted key still pending")
	}
	if err := s.Reject("10000000eeeeeeee"); err != nil {
		t.Fatal(err)
	}
	if ps, _ := s.List(); len(ps) != 4 {
		t.Errorf("after accept and reject: %+v", ps)
	}
}

// TestAcceptRefusesLinks: a pending file that is a symlink (say to another
// probe's key, or a file the provider's account may read) or a FIFO is
// refused by list and accept alike, and nothing is written.
func TestAcceptRefusesLinks(t *testing.T) {
	dir := t.TempDir()
	s := Server{Pending: filepath.Join(dir, "enroll"), Keys: filepath.Join(dir, "keys")}
	os.MkdirAll(s.Pending, 0o755)
	good, fp := keyLine(t)
	target := filepath.Join(dir, "elsewhere.pub")
	if err := os.WriteFile(target, []byte(good+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(s.Pending, "10000000aaaaaaaa.pub")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(s.Pending, "10000000bbbbbbbb.pub"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"10000000aaaaaaaa", "10000000bbbbbbbb"} {
		if p, err := s.Accept(id, fp); err == nil {
			t.Errorf("accepted %s: %+v", id, p)
		}
	}
	if ents, _ := os.ReadDir(s.Keys); len(ents) != 0 {
		t.Errorf("keys written: %v", ents)
	}
}

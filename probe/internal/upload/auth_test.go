package upload_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/presscap/presscap/internal/testing/sshdtest"
	"github.com/presscap/presscap/probe/internal/upload"
	"golang.org/x/crypto/ssh"
)

// TestPasswordAuth logs in with a password as a dedicated system user
// (created and deleted by the test; root's password is never set).
func TestPasswordAuth(t *testing.T) {
	r := newRig(t, sshdtest.Options{Password: true})
	user := sshdtest.NewUser(t)
	if err := os.Chown(r.remoteDir, user.UID, user.GID); err != nil {
		t.Fatal(err)
	}
	data := r.put(t, "a_20261127T020000.000Z_all.pcap", 100<<10)
	r.cfg.User = user.Name
	r.cfg.Auth = upload.AuthPassword
	r.cfg.Password = user.Password + "-wrong"
	u, ev := r.newUploader(t, nil)
	err := u.UploadNow(context.Background())
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("wrong password: got %v, want an authentication error", err)
	}
	if got := names(t, r.queueDir); !reflect.DeepEqual(got, []string{"a_20261127T020000.000Z_all.pcap"}) {
		t.Fatalf("queue after refused login: %v", got)
	}
	if ev.count(upload.Failed) != 1 || u.Status().LastError == "" {
		t.Fatalf("events %v, status %+v", ev.kinds(), u.Status())
	}

	r.cfg.Password = user.Password
	u, _ = r.newUploader(t, nil)
	if err := u.UploadNow(context.Background()); err != nil {
		t.Fatalf("password login: %v\n%s", err, r.srv.Log())
	}
	assertFile(t, filepath.Join(r.remoteDir, "a_20261127T020000.000Z_all.pcap"), data)
	if !strings.Contains(r.srv.Log(), "Accepted password for "+user.Name) {
		t.Fatalf("sshd did not log a password login:\n%s", r.srv.Log())
	}
	// Written as that user, not as root.
	st, err := os.Stat(filepath.Join(r.remoteDir, "a_20261127T020000.000Z_all.pcap"))
	if err != nil || int(st.Sys().(*syscall.Stat_t).Uid) != user.UID {
		t.Fatalf("uploaded file not owned by %s: %v", user.Name, err)
	}
}

// TestKeyAuth: the generated key works once the provider installed it, and
// is refused (queue kept) before.
func TestKeyAuth(t *testing.T) {
	r := newRig(t, sshdtest.Options{})
	data := r.put(t, "a_20261127T020000.000Z_all.pcap", 10<<10)
	// A fresh state dir means a fresh key that the server does not know.
	other := t.TempDir()
	u, err := upload.New(r.cfg, r.queueDir, other, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	line := u.PublicKey()
	if _, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err != nil || !strings.HasPrefix(line, "ssh-ed25519 ") || !strings.HasPrefix(comment, "presscap@") {
		t.Fatalf("public key %q is not an authorized_keys line: %v", line, err)
	}
	if u.Status().PublicKey != line {
		t.Fatal("status does not show the public key")
	}
	if err := u.UploadNow(context.Background()); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("unknown key: got %v, want an authentication error", err)
	}
	if got := names(t, r.queueDir); !reflect.DeepEqual(got, []string{"a_20261127T020000.000Z_all.pcap"}) {
		t.Fatalf("queue after refused login: %v", got)
	}
	// The provider installs the key; the same uploader now succeeds, and a
	// restart reads the same key back.
	r.srv.AuthorizeLine(line)
	u2, err := upload.New(r.cfg, r.queueDir, other, nil, nil, nil)
	if err != nil || u2.PublicKey() != line {
		t.Fatalf("key changed across restarts: %q vs %q (%v)", u2.PublicKey(), line, err)
	}
	if err := u.UploadNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	assertFile(t, filepath.Join(r.remoteDir, "a_20261127T020000.000Z_all.pcap"), data)
	st, err := os.Stat(filepath.Join(other, upload.KeyFileName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v %v", st.Mode(), err)
	}
}

func TestHostKeyPinning(t *testing.T) {
	r := newRig(t, sshdtest.Options{})
	r.put(t, "a_20261127T020000.000Z_all.pcap", 1000)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := ssh.NewSignerFromKey(priv)
	other := otherSigner.PublicKey()
	// What the provider would paste: ssh-keyscan's known_hosts line and
	// ssh-keygen -lf's fingerprint, from OpenSSH's own tools.
	scan, err := exec.Command("ssh-keyscan", "-t", "ed25519", "-p", fmt.Sprint(r.srv.Port), "127.0.0.1").Output()
	if err != nil {
		t.Fatalf("ssh-keyscan (Debian package openssh-client): %v", err)
	}
	pubFile := filepath.Join(t.TempDir(), "host.pub")
	os.WriteFile(pubFile, ssh.MarshalAuthorizedKey(r.srv.HostKey), 0o644)
	lf, err := exec.Command("ssh-keygen", "-lf", pubFile).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -lf: %v", err)
	}
	fp := strings.Fields(string(lf))[1]
	for _, tc := range []struct {
		name, pin string
		ok        bool
	}{
		{"ssh-keyscan line", strings.TrimSpace(string(scan)), true},
		{"ssh-keygen -lf fingerprint", fp, true},
		{"other key, known_hosts line", "[127.0.0.1]:22 " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(other))), false},
		{"other key, fingerprint", ssh.FingerprintSHA256(other), false},
		{"right fingerprint", r.srv.Fingerprint(), true},
		{"right bare key", strings.TrimSpace(string(ssh.MarshalAuthorizedKey(r.srv.HostKey))), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := r.cfg
			cfg.HostKey = tc.pin
			u, err := upload.New(cfg, r.queueDir, r.stateDir, nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = u.UploadNow(context.Background())
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				// Back to the start for the next case.
				os.Remove(filepath.Join(r.remoteDir, "a_20261127T020000.000Z_all.pcap"))
				r.put(t, "a_20261127T020000.000Z_all.pcap", 1000)
				return
			}
			if !errors.Is(err, upload.ErrHostKey) {
				t.Fatalf("got %v, want ErrHostKey", err)
			}
			msg := err.Error()
			for _, want := range []string{r.srv.Fingerprint(), ssh.FingerprintSHA256(other), "refusing", "upload.host_key"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not mention %q", msg, want)
				}
			}
			if got := names(t, r.queueDir); !reflect.DeepEqual(got, []string{"a_20261127T020000.000Z_all.pcap"}) {
				t.Fatalf("queue after refused host key: %v", got)
			}
			if got := r.remote(t); len(got) != 0 {
				t.Fatalf("server got %v from a refused connection", got)
			}
		})
	}
}

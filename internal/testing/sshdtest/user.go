package sshdtest

import (
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/testtool"
)

// User is a system account created for a test.
type User struct {
	Name     string
	Password string
	UID, GID int
}

// NewUser creates a system user with a random password (for password
// authentication; root's password is never touched) and deletes it at
// cleanup. It needs useradd and chpasswd (Debian package passwd).
func NewUser(t testing.TB) User {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	name := "pcup" + hex.EncodeToString(b[:])
	rand.Read(b[:])
	pw := "pw-" + hex.EncodeToString(b[:])
	for _, tool := range []string{"useradd", "chpasswd", "userdel"} {
		testtool.Path(t, tool, "passwd")
	}
	// No home directory and no login shell: the account only speaks SFTP.
	if out, err := exec.Command("useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "--user-group", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		// The user's sshd session may still be exiting: userdel refuses a
		// user with processes, so try for a while.
		var out []byte
		var err error
		for i := 0; i < 200; i++ { // up to 20 s
			if out, err = exec.Command("userdel", name).CombinedOutput(); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("userdel %s: %v: %s", name, err, out)
	})
	cmd := exec.Command("chpasswd")
	cmd.Stdin = strings.NewReader(name + ":" + pw + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd %s: %v: %s", name, err, out)
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return User{Name: name, Password: pw, UID: uid, GID: gid}
}

package testtool

import (
	"errors"
	"os"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// ExhaustFDs lowers the process's descriptor limit to a few above what is
// open and takes every remaining descriptor, as a flood of connections
// would; the returned func (also run at cleanup) gives them back and
// restores the limit. Tests using it must not run in parallel with others
// of their package.
func ExhaustFDs(t testing.TB) func() {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = uint64(len(ents)) + 32
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	var held []int
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			if !errors.Is(err, unix.EMFILE) {
				t.Fatalf("open /dev/null: %v", err)
			}
			break
		}
		held = append(held, fd)
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			for _, fd := range held {
				unix.Close(fd)
			}
			unix.Setrlimit(unix.RLIMIT_NOFILE, &old)
		})
	}
	t.Cleanup(release)
	return release
}

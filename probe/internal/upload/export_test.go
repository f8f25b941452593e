package upload

import "fmt"

// RateBurst exposes the limiter's burst to the wire test (package upload_test).
var RateBurst = rateBurst

// HoldPart records name's .part (at partPath on cfg's server) in stateDir's
// journal the way an upload in flight does, from a journal of its own: flock
// is per open file, so this holds the record exactly as another process
// (probe upload -test) would. The record stays locked until release.
func HoldPart(cfg Config, stateDir, name, partPath string) (release func(), err error) {
	addr, err := cfg.address()
	if err != nil {
		return nil, err
	}
	j := newPartJournal(stateDir, func(format string, args ...any) { err = fmt.Errorf(format, args...) })
	release = j.add(name, partRecord{Server: addr, User: cfg.User, Path: partPath})
	return release, err
}

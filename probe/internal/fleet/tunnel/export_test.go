package tunnel

// Checks is how many checks r has done, each counted once the next one
// is waited for: a test moves the fake clock on after it.
func (r *Runner) Checks() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.checks
}

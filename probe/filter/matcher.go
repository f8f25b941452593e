package filter

// Matcher evaluates an expression on frames as stored (Offline mode) in
// userspace. It is safe for concurrent use.
type Matcher struct {
	expr string
	prog []vmIns
}

// NewMatcher compiles expr for userspace evaluation. An empty expression
// matches every frame.
func NewMatcher(expr string) (*Matcher, error) {
	raw, err := compileRaw([]Rule{{Expr: expr, Snap: 1}}, Offline, 0)
	if err != nil {
		return nil, err
	}
	prog, err := newVM(raw)
	if err != nil {
		return nil, err
	}
	return &Matcher{expr: expr, prog: prog}, nil
}

// String returns the expression the Matcher was built from.
func (m *Matcher) String() string { return m.expr }

// Match reports whether the expression accepts frame, taking the frame's
// length as its length on the wire.
func (m *Matcher) Match(frame []byte) bool {
	return run(m.prog, frame, len(frame), vlanInfo{}) != 0
}

// MatchLen is Match for a frame that was cut to a snap length: wireLen is
// the packet's original length, which `len`, `less` and `greater` test (as
// libpcap does on a capture file). Loads beyond the captured bytes reject
// the frame, as in the kernel.
func (m *Matcher) MatchLen(frame []byte, wireLen int) bool {
	return run(m.prog, frame, wireLen, vlanInfo{}) != 0
}

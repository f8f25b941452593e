package filter

import "encoding/binary"

// Matcher evaluates an expression in userspace on frames as stored, VLAN
// tags inside the frame. It is safe for concurrent use.
//
// NewMatcher gives the expression the meaning it has on a file (tcpdump -r,
// the Offline program). NewLiveMatcher gives it the meaning it had on the
// interface (tcpdump -i, the Live program): "ip" then also matches a
// tagged IPv4 frame, since the kernel had taken the tag out of the frame.
type Matcher struct {
	expr string
	prog []vmIns
	live bool
}

// NewMatcher compiles expr for userspace evaluation. An empty expression
// matches every frame.
func NewMatcher(expr string) (*Matcher, error) { return newMatcher(expr, Offline) }

// NewLiveMatcher compiles expr's Live program for frames stored the way
// libpcap writes what it captured: the outer 802.1Q or 802.1ad tag, which
// the kernel reported out of band, put back into the frame. Match takes it
// out again and hands it to the program as the kernel's ancillary data, so
// the verdict is the one the socket's filter gave.
func NewLiveMatcher(expr string) (*Matcher, error) { return newMatcher(expr, Live) }

func newMatcher(expr string, mode Mode) (*Matcher, error) {
	raw, err := compileRaw([]Rule{{Expr: expr, Snap: 1}}, mode, 0)
	if err != nil {
		return nil, err
	}
	prog, err := newVM(raw)
	if err != nil {
		return nil, err
	}
	return &Matcher{expr: expr, prog: prog, live: mode == Live}, nil
}

// String returns the expression the Matcher was built from.
func (m *Matcher) String() string { return m.expr }

// Match reports whether the expression accepts frame, taking the frame's
// length as its length on the wire.
func (m *Matcher) Match(frame []byte) bool { return m.match(frame, len(frame)) }

// MatchLen is Match for a frame that was cut to a snap length: wireLen is
// the packet's original length, which `len`, `less` and `greater` test (as
// libpcap does on a capture file). Loads beyond the captured bytes reject
// the frame, as in the kernel.
func (m *Matcher) MatchLen(frame []byte, wireLen int) bool { return m.match(frame, wireLen) }

func (m *Matcher) match(frame []byte, wireLen int) bool {
	if !m.live || len(frame) < 18 {
		return run(m.prog, frame, wireLen, vlanInfo{}) != 0
	}
	tpid := binary.BigEndian.Uint16(frame[12:])
	if tpid != eth8021Q && tpid != eth8021AD {
		return run(m.prog, frame, wireLen, vlanInfo{}) != 0
	}
	vl := vlanInfo{present: true, tci: binary.BigEndian.Uint16(frame[14:])}
	// The frame without its tag, on the stack for common sizes.
	var buf [1600]byte
	var seen []byte
	if len(frame)-4 <= len(buf) {
		seen = buf[:0]
	}
	seen = append(append(seen, frame[:12]...), frame[16:]...)
	return run(m.prog, seen, wireLen-4, vl) != 0
}

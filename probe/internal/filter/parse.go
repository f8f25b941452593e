package filter

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"golang.org/x/net/bpf"
)

// Address qualifiers.
type aq int

const (
	aDefault aq = iota
	aHost
	aNet
	aPort
	aPortRange
	aProto
)

// qual is the qualifier list in force. Like libpcap, a bare value after
// `and`/`or` reuses the last one: `host a or b`, `port 80 or 443`.
type qual struct {
	ok    bool // false after a test that has no qualifiers (tcp, a relation)
	proto pq
	dir   dq
	addr  aq
}

type parser struct {
	expr string
	lex  lexer
	tok  token
	g    *gen
	q    qual

	// depth counts the parentheses, brackets, nots and minus signs the
	// parser is inside: MaxNesting bounds it, and so the recursion.
	depth int
	// arith remembers each arithmetic expression parsed, so that the
	// relation tried (and abandoned) at every level of nested parentheses
	// does not parse the levels below again: that made parsing quadratic.
	arith map[arithKey]arithMemo
	// lexed counts the tokens read, again after backtracking: the work
	// parsing did, which the tests hold linear in the input.
	lexed int
}

type arithKey struct{ pos, depth int }

type arithMemo struct {
	a   arith
	err error
	end mark
}

// enter goes one level deeper into nested syntax at pos; leave comes
// back out.
func (p *parser) enter(pos int) error {
	if p.depth >= MaxNesting {
		return p.errAt(pos, "nested more than %d deep", MaxNesting)
	}
	p.depth++
	return nil
}

func (p *parser) leave() { p.depth-- }

// errAt is the error for a problem at a token.
func (p *parser) errAt(pos int, format string, args ...any) error {
	return &SyntaxError{Expr: p.expr, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) advance() error {
	t, err := p.lex.next()
	if err != nil {
		var se *SyntaxError
		if errors.As(err, &se) {
			se.Expr = p.expr
		}
		return err
	}
	p.tok = t
	p.lexed++
	return nil
}

func (p *parser) isKW(words ...string) bool { return p.is(tKW, words) }

func (p *parser) isPunct(ops ...string) bool { return p.is(tPunct, ops) }

// is reports whether the current token is of kind and one of texts.
func (p *parser) is(kind tokKind, texts []string) bool {
	return p.tok.kind == kind && slices.Contains(texts, p.tok.text)
}

type mark struct {
	pos int
	tok token
}

func (p *parser) save() mark     { return mark{p.lex.pos, p.tok} }
func (p *parser) restore(m mark) { p.lex.pos, p.tok = m.pos, m.tok }
func (p *parser) expect(op string) error {
	if !p.isPunct(op) {
		return p.errAt(p.tok.pos, "expected %q, found %s", op, p.tok)
	}
	return p.advance()
}

// parseExpression parses a whole filter expression for one program.
func parseExpression(expr string, mode Mode) (node, *gen, error) {
	p := newParser(expr, mode)
	n, err := p.parse()
	if err != nil {
		return nil, nil, err
	}
	return n, p.g, nil
}

func newParser(expr string, mode Mode) *parser {
	return &parser{expr: expr, lex: lexer{src: expr}, g: newGen(mode), arith: map[arithKey]arithMemo{}}
}

func (p *parser) parse() (node, error) {
	if len(p.expr) > MaxExprLen {
		return nil, p.errAt(MaxExprLen, "the expression is %d bytes long, over the limit of %d", len(p.expr), MaxExprLen)
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tEOF {
		return nConst(true), nil
	}
	n, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, p.errAt(p.tok.pos, "expected 'and', 'or' or the end, found %s", p.tok)
	}
	return n, nil
}

// parseExpr: term { (and|or) term }, both operators with the same
// precedence and left associative, as in pcap-filter(7).
func (p *parser) parseExpr() (node, error) { return p.parseChain(p.parseTerm) }

// parseChain parses operand { (and|or) operand }, left associative.
func (p *parser) parseChain(operand func() (node, error)) (node, error) {
	left, err := operand()
	if err != nil {
		return nil, err
	}
	for {
		isAnd := p.isKW("and") || p.isPunct("&&")
		isOr := p.isKW("or") || p.isPunct("||")
		if !isAnd && !isOr {
			return left, nil
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		right, err := operand()
		if err != nil {
			return nil, err
		}
		if isAnd {
			left = and(left, right)
		} else {
			left = or(left, right)
		}
	}
}

func (p *parser) parseTerm() (node, error) {
	if p.isKW("not") || p.isPunct("!") {
		if err := p.enter(p.tok.pos); err != nil {
			return nil, err
		}
		defer p.leave()
		if err := p.advance(); err != nil {
			return nil, err
		}
		n, err := p.parseTerm()
		if err != nil {
			return nil, err
		}
		return not(n), nil
	}
	return p.parsePrimary()
}

// startsArith reports whether the current token may begin an arithmetic
// expression (and so a relation).
func (p *parser) startsArith() bool {
	switch p.tok.kind {
	case tNum:
		return true
	case tPunct:
		return p.tok.text == "(" || p.tok.text == "-"
	case tKW:
		if p.tok.text == "len" {
			return true
		}
		if _, ok := pqNames[p.tok.text]; ok {
			m := p.save()
			defer p.restore(m)
			if p.advance() != nil {
				return false
			}
			return p.isPunct("[")
		}
	}
	return false
}

func (p *parser) parsePrimary() (node, error) {
	if p.startsArith() {
		// A number or a parenthesis may start a relation or be a value
		// (`port 80 or 443`, `host a and (b or c)`): try the relation and
		// back off. len, -, proto[...] can only be arithmetic.
		committed := !(p.tok.kind == tNum || p.isPunct("("))
		m := p.save()
		n, ok, err := p.tryRelation()
		if ok || committed && err != nil {
			return n, err
		}
		if committed {
			return nil, p.errAt(p.tok.pos, "expected a comparison (=, !=, <, <=, >, >=), found %s", p.tok)
		}
		p.restore(m)
	}
	t := p.tok
	switch t.kind {
	case tEOF:
		return nil, p.errAt(t.pos, "expected a primitive, found the end of the expression")
	case tPunct:
		if t.text == "(" {
			if err := p.enter(t.pos); err != nil {
				return nil, err
			}
			defer p.leave()
			saved := p.q
			if err := p.advance(); err != nil {
				return nil, err
			}
			n, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			if err := p.expect(")"); err != nil {
				return nil, err
			}
			p.q = saved
			return n, nil
		}
		return nil, p.errAt(t.pos, "expected a primitive, found %s", t)
	case tNum, tHID, tHID6, tEID, tID:
		if !p.q.ok {
			return nil, p.errAt(t.pos, "%s needs a qualifier such as host, net or port before it", t)
		}
		return p.parseID(p.q)
	case tKW:
		return p.parseKeyword()
	}
	return nil, p.errAt(t.pos, "unexpected %s", t)
}

func (p *parser) parseKeyword() (node, error) {
	t := p.tok
	switch t.text {
	case "less", "greater":
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.kind != tNum {
			return nil, p.errAt(p.tok.pos, "expected a number after %q, found %s", t.text, p.tok)
		}
		v := p.tok.val
		if err := p.advance(); err != nil {
			return nil, err
		}
		p.q = qual{}
		lenLoad := []bpf.RawInstruction{stmt(clsLD|szW|mLEN, 0)}
		if t.text == "less" {
			return not(&nTest{stmts: lenLoad, jop: jmpJGT | srcK, k: v}), nil
		}
		return &nTest{stmts: lenLoad, jop: jmpJGE | srcK, k: v}, nil
	case "vlan":
		if err := p.advance(); err != nil {
			return nil, err
		}
		p.q = qual{}
		if p.tok.kind == tNum || p.isPunct("(") {
			m := p.save()
			v, ok, err := p.parsePNum()
			if err != nil {
				return nil, err
			}
			if ok {
				if v > 4095 {
					return nil, p.errAt(m.tok.pos, "VLAN ID %d is over the maximum 4095", v)
				}
				return p.g.vlan(v, true), nil
			}
			p.restore(m)
		}
		return p.g.vlan(0, false), nil
	case "broadcast", "multicast":
		return p.parseCast(pDefault)
	case "src", "dst", "host", "net", "port", "portrange", "proto":
		return p.parseHead(pDefault)
	case "and", "or", "not":
		return nil, p.errAt(t.pos, "expected a primitive, found %s", t)
	case "gateway", "protochain", "mpls", "pppoed", "pppoes", "geneve", "inbound", "outbound", "ifindex", "byte":
		return nil, p.errAt(t.pos, "%q is not supported by this compiler", t.text)
	}
	if pr, ok := pqNames[t.text]; ok {
		if err := p.advance(); err != nil {
			return nil, err
		}
		switch {
		case p.isKW("src", "dst", "host", "net", "port", "portrange", "proto"):
			return p.parseHead(pr)
		case p.isKW("broadcast", "multicast"):
			return p.parseCast(pr)
		case p.isKW("gateway", "protochain"):
			return nil, p.errAt(p.tok.pos, "%q is not supported by this compiler", p.tok.text)
		}
		n, err := p.g.abbrev(pr)
		if err != nil {
			return nil, p.errAt(t.pos, "%v", err)
		}
		p.q = qual{}
		return n, nil
	}
	return nil, p.errAt(t.pos, "keyword %q is not supported by this compiler", t.text)
}

// parsePNum reads NUM or a parenthesised NUM.
func (p *parser) parsePNum() (uint32, bool, error) {
	if p.tok.kind == tNum {
		v := p.tok.val
		return v, true, p.advance()
	}
	if p.isPunct("(") {
		if err := p.enter(p.tok.pos); err != nil {
			return 0, false, err
		}
		defer p.leave()
		if err := p.advance(); err != nil {
			return 0, false, err
		}
		v, ok, err := p.parsePNum()
		if err != nil || !ok {
			return 0, false, err
		}
		if !p.isPunct(")") {
			return 0, false, nil
		}
		return v, true, p.advance()
	}
	return 0, false, nil
}

func (p *parser) parseCast(pr pq) (node, error) {
	t := p.tok
	if err := p.advance(); err != nil {
		return nil, err
	}
	p.q = qual{}
	g := p.g
	if t.text == "broadcast" {
		switch pr {
		case pDefault, pLink:
			return bcmp(offset{0, -1}, 0, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), nil
		case pIP:
			// No netmask is known, as with tcpdump on a file: the
			// all-zeros and all-ones destinations count.
			return and(g.linkTypeTest(ethIP), or(mcmp(g.linkPL, 16, 4, 0, 0xffffffff), mcmp(g.linkPL, 16, 4, 0xffffffff, 0xffffffff))), nil
		}
		return nil, p.errAt(t.pos, "only ether and ip broadcast are supported")
	}
	switch pr {
	case pDefault, pLink:
		return jtest(offset{0, -1}, 0, 1, jmpJSET, 1), nil
	case pIP:
		return and(g.linkTypeTest(ethIP), jtest(g.linkPL, 16, 1, jmpJGE, 224)), nil
	case pIP6:
		return and(g.linkTypeTest(ethIPv6), cmp(g.linkPL, 24, 1, 255)), nil
	}
	return nil, p.errAt(t.pos, "only ether, ip and ip6 multicast are supported")
}

// parseHead reads [dir] [host|net|port|portrange|proto] then the value(s).
func (p *parser) parseHead(pr pq) (node, error) {
	q := qual{ok: true, proto: pr}
	if p.isKW("src", "dst") {
		first := p.tok.text
		if first == "src" {
			q.dir = dSrc
		} else {
			q.dir = dDst
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.isKW("or", "and") {
			m := p.save()
			op := p.tok.text
			if err := p.advance(); err != nil {
				return nil, err
			}
			if p.isKW("src", "dst") && p.tok.text != first {
				if op == "or" {
					q.dir = dOr
				} else {
					q.dir = dAnd
				}
				if err := p.advance(); err != nil {
					return nil, err
				}
			} else {
				p.restore(m)
			}
		}
	}
	switch {
	case p.isKW("host"):
		q.addr = aHost
	case p.isKW("net"):
		q.addr = aNet
	case p.isKW("port"):
		q.addr = aPort
	case p.isKW("portrange"):
		q.addr = aPortRange
	case p.isKW("proto"):
		q.addr = aProto
	case p.isKW("gateway", "protochain"):
		return nil, p.errAt(p.tok.pos, "%q is not supported by this compiler", p.tok.text)
	}
	if q.addr != aDefault {
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	if q.dir == dDefault && q.addr == aDefault {
		return nil, p.errAt(p.tok.pos, "expected a qualifier, found %s", p.tok)
	}
	p.q = q
	return p.parseIDExpr(q)
}

// parseIDExpr reads the value after a qualifier: a value, or values in
// parentheses joined by and/or/not, all under the same qualifiers.
func (p *parser) parseIDExpr(q qual) (node, error) {
	if p.isKW("not") || p.isPunct("!") || p.isPunct("(") {
		if err := p.enter(p.tok.pos); err != nil {
			return nil, err
		}
		defer p.leave()
	}
	if p.isKW("not") || p.isPunct("!") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		n, err := p.parseIDExpr(q)
		if err != nil {
			return nil, err
		}
		return not(n), nil
	}
	if p.isPunct("(") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		left, err := p.parseChain(func() (node, error) { return p.parseIDExpr(q) })
		if err != nil {
			return nil, err
		}
		if err := p.expect(")"); err != nil {
			return nil, err
		}
		p.q = q
		return left, nil
	}
	n, err := p.parseID(q)
	p.q = q
	return n, err
}

// parseID turns one value under qualifiers q into a test.
func (p *parser) parseID(q qual) (node, error) {
	t := p.tok
	if err := p.advance(); err != nil {
		return nil, err
	}
	g := p.g
	wrap := func(n node, err error) (node, error) {
		if err != nil {
			var se *SyntaxError
			if errors.As(err, &se) {
				return nil, err
			}
			return nil, p.errAt(t.pos, "%s: %v", t.text, err)
		}
		return n, nil
	}
	switch t.kind {
	case tNum:
		return wrap(p.numID(t.val, 32, false, q))
	case tHID:
		addr, bits, err := parseHID(t.text)
		if err != nil {
			return nil, p.errAt(t.pos, "%v", err)
		}
		if p.isPunct("/") {
			if err := p.advance(); err != nil {
				return nil, err
			}
			if p.tok.kind != tNum {
				return nil, p.errAt(p.tok.pos, "expected a prefix length after '/', found %s", p.tok)
			}
			ml := p.tok.val
			mpos := p.tok.pos
			if err := p.advance(); err != nil {
				return nil, err
			}
			if ml > 32 {
				return nil, p.errAt(mpos, "prefix length %d is over 32", ml)
			}
			mask := uint32(0)
			if ml > 0 {
				mask = 0xffffffff << (32 - ml)
			}
			return wrap(p.maskedNet(addr, mask, q, t.text))
		}
		if p.isKW("mask") {
			if err := p.advance(); err != nil {
				return nil, err
			}
			if p.tok.kind != tHID {
				return nil, p.errAt(p.tok.pos, "expected a dotted netmask after 'mask', found %s", p.tok)
			}
			mask, _, err := parseHID(p.tok.text)
			if err != nil {
				return nil, p.errAt(p.tok.pos, "%v", err)
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
			return wrap(p.maskedNet(addr, mask, q, t.text))
		}
		return wrap(p.numID(addr, bits, true, q))
	case tHID6:
		ip := net.ParseIP(t.text).To16()
		ml := uint32(128)
		if p.isPunct("/") {
			if err := p.advance(); err != nil {
				return nil, err
			}
			if p.tok.kind != tNum {
				return nil, p.errAt(p.tok.pos, "expected a prefix length after '/', found %s", p.tok)
			}
			ml = p.tok.val
			if ml > 128 {
				return nil, p.errAt(p.tok.pos, "prefix length %d is over 128", ml)
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		var addr, mask [16]byte
		copy(addr[:], ip)
		m := net.CIDRMask(int(ml), 128)
		copy(mask[:], m)
		for i := range addr {
			if addr[i]&^mask[i] != 0 {
				return nil, p.errAt(t.pos, "%s/%d has bits set outside the prefix", t.text, ml)
			}
		}
		switch q.addr {
		case aDefault, aHost:
			if ml != 128 {
				return nil, p.errAt(t.pos, "a prefix length is for 'net' only")
			}
			return wrap(g.hostV6(addr, mask, q.proto, q.dir, "host"))
		case aNet:
			return wrap(g.hostV6(addr, mask, q.proto, q.dir, "net"))
		}
		return nil, p.errAt(t.pos, "an IPv6 address cannot be a port or protocol")
	case tEID:
		if q.proto != pDefault && q.proto != pLink || q.addr != aDefault && q.addr != aHost {
			return nil, p.errAt(t.pos, "an Ethernet address is only for 'ether host'")
		}
		if q.proto == pDefault && q.addr == aDefault && q.dir == dDefault {
			return nil, p.errAt(t.pos, "an Ethernet address needs 'ether host'")
		}
		return g.etherHost(parseMAC(t.text), q.dir), nil
	case tID:
		return wrap(p.nameID(t.text, q))
	}
	return nil, p.errAt(t.pos, "expected a host, network, port or protocol, found %s", t)
}

// numID handles a number or dotted IPv4 id (bits significant bits).
func (p *parser) numID(v uint32, bits int, dotted bool, q qual) (node, error) {
	g := p.g
	switch q.addr {
	case aDefault, aHost, aNet:
		if q.proto == pLink {
			return nil, fmt.Errorf("'ether' needs an Ethernet address")
		}
		mask := uint32(0xffffffff)
		if !dotted && q.addr == aNet {
			for v != 0 && v&0xff000000 == 0 {
				v <<= 8
				mask <<= 8
			}
		} else if bits < 32 {
			mask <<= 32 - bits
		}
		what := "host"
		if q.addr == aNet {
			what = "net"
		}
		return g.hostV4(v, mask, q.proto, q.dir, what)
	case aPort, aPortRange:
		ipp, err := portProto(q.proto)
		if err != nil {
			return nil, err
		}
		if dotted {
			return nil, fmt.Errorf("an IPv4 address is not a port")
		}
		if v > 65535 {
			return nil, fmt.Errorf("port %d is over 65535", v)
		}
		return g.portTest(v, v, ipp, q.dir), nil
	case aProto:
		if dotted {
			return nil, fmt.Errorf("an IPv4 address is not a protocol number")
		}
		if q.dir != dDefault {
			return nil, fmt.Errorf("a direction cannot apply to 'proto'")
		}
		return g.proto(v, q.proto)
	}
	return nil, fmt.Errorf("unsupported qualifier")
}

func (p *parser) maskedNet(addr, mask uint32, q qual, text string) (node, error) {
	if q.addr != aNet && q.addr != aDefault {
		return nil, fmt.Errorf("a mask is for 'net' only")
	}
	if addr&^mask != 0 {
		return nil, fmt.Errorf("bits are set outside the mask")
	}
	return p.g.hostV4(addr, mask, q.proto, q.dir, "net")
}

func portProto(pr pq) (int, error) {
	switch pr {
	case pDefault:
		return protoUndef, nil
	case pTCP:
		return ipprotoTCP, nil
	case pUDP:
		return ipprotoUDP, nil
	case pSCTP:
		return ipprotoSCTP, nil
	}
	return 0, fmt.Errorf("'%s' cannot qualify a port (only tcp, udp, sctp)", pr)
}

// services is the part of /etc/services (Debian netbase) that filters may
// name; the probe has no /etc/services. The value lists the protocols the
// name is defined for.
var services = map[string]struct {
	port     uint32
	tcp, udp bool
}{
	"ftp-data": {20, true, false}, "ftp": {21, true, false}, "ssh": {22, true, false},
	"telnet": {23, true, false}, "smtp": {25, true, false}, "domain": {53, true, true},
	"bootps": {67, false, true}, "bootpc": {68, false, true}, "tftp": {69, false, true},
	"http": {80, true, false}, "www": {80, true, false}, "pop3": {110, true, false},
	"ntp": {123, false, true}, "imap2": {143, true, false}, "imap": {143, true, false},
	"snmp": {161, true, true}, "bgp": {179, true, false}, "ldap": {389, true, true},
	"https": {443, true, true}, "syslog": {514, false, true}, "sip": {5060, true, true},
	"sip-tls": {5061, true, true},
}

func lookupPort(name string) (uint32, int, bool) {
	if v, err := parseNum(name); err == nil && name != "" && isDigit(name[0]) {
		if v > 65535 {
			return 0, 0, false
		}
		return v, protoUndef, true
	}
	s, ok := services[strings.ToLower(name)]
	if !ok {
		return 0, 0, false
	}
	switch {
	case s.tcp && s.udp:
		return s.port, protoUndef, true
	case s.tcp:
		return s.port, ipprotoTCP, true
	}
	return s.port, ipprotoUDP, true
}

// ipProtocols is the part of /etc/protocols filters may name.
var ipProtocols = map[string]uint32{
	"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "ipv6": 41, "gre": 47, "esp": 50, "ah": 51,
	"ipv6-icmp": 58, "ospf": 89, "pim": 103, "vrrp": 112, "sctp": 132,
}

// etherProtocols are libpcap's built-in names for `ether proto \name`.
var etherProtocols = map[string]uint32{
	"ip": ethIP, "ip6": ethIPv6, "arp": ethARP, "rarp": ethRARP, "atalk": ethATalk,
	"aarp": ethAARP, "decnet": 0x6003, "lat": 0x6004, "sca": 0x6007, "moprc": 0x6002,
	"mopdl": 0x6001, "loopback": 0x9000,
	"iso": llcSAPISONS, "stp": 0x42, "ipx": llcSAPIPX, "netbeui": llcSAPNetBEUI,
}

// resolvePortProto merges a port name's protocol with the qualifier.
func resolvePortProto(name string, qp pq, real int) (int, error) {
	switch qp {
	case pDefault:
		return real, nil
	case pTCP:
		if real == ipprotoUDP {
			return 0, fmt.Errorf("port %s is udp", name)
		}
		return ipprotoTCP, nil
	case pUDP:
		if real == ipprotoTCP {
			return 0, fmt.Errorf("port %s is tcp", name)
		}
		return ipprotoUDP, nil
	case pSCTP:
		return ipprotoSCTP, nil
	}
	return 0, fmt.Errorf("'%s' cannot qualify a port (only tcp, udp, sctp)", qp)
}

func (p *parser) nameID(name string, q qual) (node, error) {
	g := p.g
	switch q.addr {
	case aDefault, aHost, aNet:
		return nil, fmt.Errorf("unknown host or network %q (names are not resolved; give an address)", name)
	case aPort:
		v, real, ok := lookupPort(name)
		if !ok {
			return nil, fmt.Errorf("unknown port %q", name)
		}
		ipp, err := resolvePortProto(name, q.proto, real)
		if err != nil {
			return nil, err
		}
		return g.portTest(v, v, ipp, q.dir), nil
	case aPortRange:
		lo, hi, ipp, err := parsePortRange(name, q.proto)
		if err != nil {
			return nil, err
		}
		return g.portTest(lo, hi, ipp, q.dir), nil
	case aProto:
		if q.dir != dDefault {
			return nil, fmt.Errorf("a direction cannot apply to 'proto'")
		}
		var v uint32
		var ok bool
		switch q.proto {
		case pDefault, pIP, pIP6:
			v, ok = ipProtocols[name]
			if !ok {
				return nil, fmt.Errorf("unknown ip protocol %q", name)
			}
		case pLink:
			v, ok = etherProtocols[name]
			if !ok {
				return nil, fmt.Errorf("unknown ether protocol %q", name)
			}
		default:
			return nil, fmt.Errorf("'%s proto' is not supported", q.proto)
		}
		return g.proto(v, q.proto)
	}
	return nil, fmt.Errorf("unsupported qualifier")
}

// parsePortRange reads "lo-hi" with numbers or service names.
func parsePortRange(s string, qp pq) (lo, hi uint32, ipp int, err error) {
	i := strings.IndexByte(s, '-')
	if i <= 0 || i == len(s)-1 {
		return 0, 0, 0, fmt.Errorf("port range %q is not of the form low-high", s)
	}
	a, pa, ok := lookupPort(s[:i])
	if !ok {
		return 0, 0, 0, fmt.Errorf("port range %q: bad port %q", s, s[:i])
	}
	b, pb, ok := lookupPort(s[i+1:])
	if !ok {
		return 0, 0, 0, fmt.Errorf("port range %q: bad port %q", s, s[i+1:])
	}
	real := pa
	if pa != pb {
		real = protoUndef
	}
	if ipp, err = resolvePortProto(s, qp, real); err != nil {
		return 0, 0, 0, err
	}
	if a > b {
		a, b = b, a
	}
	return a, b, ipp, nil
}

// Arithmetic.

type arith interface{}

type aConst uint32
type aLen struct{}
type aLoad struct {
	proto pq
	idx   arith
	size  int
}
type aBin struct {
	op   uint16
	l, r arith
}
type aNeg struct{ a arith }

var relops = map[string]struct {
	jop    uint16
	negate bool
}{
	">": {jmpJGT, false}, ">=": {jmpJGE, false}, "=": {jmpJEQ, false}, "==": {jmpJEQ, false},
	"<=": {jmpJGT, true}, "<": {jmpJGE, true}, "!=": {jmpJEQ, true},
}

// tryRelation parses `arith relop arith`. ok is false (and the caller
// backtracks) when the text is not a relation at all.
func (p *parser) tryRelation() (node, bool, error) {
	left, err := p.parseArithExpr()
	if err != nil {
		return nil, false, err
	}
	if p.tok.kind != tPunct {
		return nil, false, nil
	}
	rel, isRel := relops[p.tok.text]
	if !isRel {
		return nil, false, nil
	}
	if err := p.advance(); err != nil {
		return nil, true, err
	}
	right, err := p.parseArithExpr()
	if err != nil {
		return nil, true, err
	}
	n, err := p.relation(left, right, rel.jop, rel.negate)
	p.q = qual{}
	return n, true, err
}

var binLevels = [][]struct {
	tok string
	op  uint16
}{
	{{"|", aluOR}},
	{{"^", aluXOR}},
	{{"&", aluAND}},
	{{"<<", aluLSH}, {">>", aluRSH}},
	{{"+", aluADD}, {"-", aluSUB}},
	{{"*", aluMUL}, {"/", aluDIV}, {"%", aluMOD}},
}

// parseArithExpr parses a whole arithmetic expression, or returns what
// parsing the one that starts here at this depth gave before.
func (p *parser) parseArithExpr() (arith, error) {
	k := arithKey{p.tok.pos, p.depth}
	if m, ok := p.arith[k]; ok {
		p.restore(m.end)
		return m.a, m.err
	}
	a, err := p.parseArith(0)
	p.arith[k] = arithMemo{a, err, p.save()}
	return a, err
}

func (p *parser) parseArith(level int) (arith, error) {
	if level == len(binLevels) {
		return p.parseUnary()
	}
	left, err := p.parseArith(level + 1)
	if err != nil {
		return nil, err
	}
	for {
		found := false
		for _, o := range binLevels[level] {
			if p.isPunct(o.tok) {
				pos := p.tok.pos
				if err := p.advance(); err != nil {
					return nil, err
				}
				right, err := p.parseArith(level + 1)
				if err != nil {
					return nil, err
				}
				if c, ok := right.(aConst); ok {
					switch {
					case c == 0 && o.op == aluDIV:
						return nil, p.errAt(pos, "division by zero")
					case c == 0 && o.op == aluMOD:
						return nil, p.errAt(pos, "modulus by zero")
					case c > 31 && (o.op == aluLSH || o.op == aluRSH):
						return nil, p.errAt(pos, "shift by more than 31 bits")
					}
				}
				left = aBin{o.op, left, right}
				found = true
				break
			}
		}
		if !found {
			return left, nil
		}
	}
}

func (p *parser) parseUnary() (arith, error) {
	t := p.tok
	if p.isPunct("-", "(") || t.kind == tKW && pqNames[t.text] != pDefault {
		if err := p.enter(t.pos); err != nil {
			return nil, err
		}
		defer p.leave()
	}
	switch {
	case p.isPunct("-"):
		if err := p.advance(); err != nil {
			return nil, err
		}
		a, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		if c, ok := a.(aConst); ok {
			return aConst(-uint32(c)), nil
		}
		return aNeg{a}, nil
	case p.isPunct("("):
		if err := p.advance(); err != nil {
			return nil, err
		}
		a, err := p.parseArithExpr()
		if err != nil {
			return nil, err
		}
		if err := p.expect(")"); err != nil {
			return nil, err
		}
		return a, nil
	case t.kind == tNum:
		return aConst(t.val), p.advance()
	case p.isKW("len"):
		return aLen{}, p.advance()
	case t.kind == tKW:
		pr, ok := pqNames[t.text]
		if !ok {
			break
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		if err := p.expect("["); err != nil {
			return nil, err
		}
		idx, err := p.parseArithExpr()
		if err != nil {
			return nil, err
		}
		size := 1
		if p.isPunct(":") {
			if err := p.advance(); err != nil {
				return nil, err
			}
			if p.tok.kind != tNum || p.tok.val != 1 && p.tok.val != 2 && p.tok.val != 4 {
				return nil, p.errAt(p.tok.pos, "expected a data size of 1, 2 or 4, found %s", p.tok)
			}
			size = int(p.tok.val)
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		if err := p.expect("]"); err != nil {
			return nil, err
		}
		switch pr {
		case pLink, pIP, pIP6, pARP, pRARP, pTCP, pUDP, pSCTP, pICMP, pICMP6, pIGMP, pIGRP, pPIM, pVRRP, pCARP:
		default:
			return nil, p.errAt(t.pos, "%q cannot be indexed", t.text)
		}
		return aLoad{pr, idx, size}, nil
	}
	return nil, p.errAt(t.pos, "expected a number, len or proto[offset], found %s", t)
}

// arithCode accumulates the guards and statements of a relation.
type arithCode struct {
	g      *gen
	guards []node
	stmts  []bpf.RawInstruction
	err    error
}

func (c *arithCode) scratch(d int) uint32 {
	r := firstScratch + d
	if r >= regSaveX && c.err == nil {
		c.err = fmt.Errorf("expression too complex: more than %d scratch memory slots", regSaveX-firstScratch)
	}
	return uint32(r % scratchMemory)
}

func (c *arithCode) emit(s ...bpf.RawInstruction) { c.stmts = append(c.stmts, s...) }

// guard returns the checks a load of proto needs, with the index's own
// guards (ig) placed where libpcap places them.
func (c *arithCode) loadGuards(pr pq, ig []node) []node {
	g := c.g
	var out []node
	switch pr {
	case pLink:
		return ig
	case pIP, pIP6, pARP, pRARP:
		n, _ := g.abbrev(pr)
		return append(ig, n)
	case pICMP6:
		out = append(ig, g.linkTypeTest(ethIPv6))
		return append(out, cmp(g.linkPL, 6, 1, ipprotoICMPv6))
	}
	ip, _ := g.abbrev(pIP)
	out = append(out, ip)
	out = append(out, ig...)
	n, _ := g.abbrev(pr)
	return append(out, n, g.ipNotFrag())
}

// gen emits code leaving a in A; guards collect in evaluation order.
func (c *arithCode) gen(a arith, d int) {
	g := c.g
	switch a := a.(type) {
	case aConst:
		c.emit(stmt(clsLD|mIMM, uint32(a)))
	case aLen:
		c.emit(stmt(clsLD|szW|mLEN, 0))
	case aNeg:
		c.gen(a.a, d)
		c.emit(stmt(clsALU|aluNEG, 0))
	case aBin:
		c.gen(a.l, d)
		if k, ok := a.r.(aConst); ok {
			c.emit(stmt(clsALU|a.op|srcK, uint32(k)))
			return
		}
		m := c.scratch(d)
		c.emit(stmt(clsST, m))
		c.gen(a.r, d+1)
		c.emit(stmt(clsMISC|miscTAX, 0), stmt(clsLD|szW|mMEM, m), stmt(clsALU|a.op|srcX, 0))
	case aLoad:
		outer := c.guards
		c.guards = nil
		k, constIdx := a.idx.(aConst)
		if !constIdx {
			c.gen(a.idx, d)
		}
		inner := c.guards
		c.guards = append(outer, c.loadGuards(a.proto, inner)...)
		sz := sizeCode(a.size)
		switch a.proto {
		case pLink:
			if constIdx {
				c.emit(stmt(clsLD|sz|mABS, uint32(k)))
			} else {
				c.emit(stmt(clsMISC|miscTAX, 0), stmt(clsLD|sz|mIND, 0))
			}
		case pIP, pIP6, pARP, pRARP, pICMP6:
			base := uint32(0)
			if a.proto == pICMP6 {
				base = 40
			}
			if constIdx {
				c.emit(load(g.linkPL, base+uint32(k), a.size)...)
			} else {
				if g.linkPL.reg >= 0 {
					c.emit(stmt(clsLDX|szW|mMEM, uint32(g.linkPL.reg)), stmt(clsALU|aluADD|srcX, 0))
				}
				c.emit(stmt(clsMISC|miscTAX, 0), stmt(clsLD|sz|mIND, g.linkPL.k+base))
			}
		default:
			if constIdx {
				c.emit(g.loadXIPHdrLen()...)
				c.emit(stmt(clsLD|sz|mIND, g.linkPL.k+uint32(k)))
			} else {
				m := c.scratch(d)
				c.emit(stmt(clsST, m))
				c.emit(g.loadXIPHdrLen()...)
				c.emit(stmt(clsLD|szW|mMEM, m), stmt(clsALU|aluADD|srcX, 0), stmt(clsMISC|miscTAX, 0), stmt(clsLD|sz|mIND, g.linkPL.k))
			}
		}
	}
}

func (p *parser) relation(l, r arith, jop uint16, negate bool) (node, error) {
	c := &arithCode{g: p.g}
	c.gen(l, 0)
	var test *nTest
	if k, ok := r.(aConst); ok {
		test = &nTest{jop: jop | srcK, k: uint32(k)}
	} else {
		m := c.scratch(0)
		c.emit(stmt(clsST, m))
		c.gen(r, 1)
		c.emit(stmt(clsMISC|miscTAX, 0), stmt(clsLD|szW|mMEM, m))
		test = &nTest{jop: jop | srcX}
	}
	if c.err != nil {
		return nil, p.errAt(p.tok.pos, "%v", c.err)
	}
	test.stmts = c.stmts
	var n node = test
	if negate {
		n = not(n)
	}
	guards := append(c.guards, n)
	return andAll(guards...), nil
}

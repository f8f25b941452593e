package filter

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// tokKind classifies a token. The lexer follows libpcap's scanner: the
// longest match wins, and on a tie a keyword beats a name, so "tcp-syn" is
// a constant but "len-100" is one (unknown) name, exactly as tcpdump reads
// them.
type tokKind int

const (
	tEOF   tokKind = iota
	tNum           // number (val)
	tHID           // dotted IPv4 host id, 1 to 4 parts
	tHID6          // IPv6 address
	tEID           // Ethernet address
	tID            // name, or anything after a backslash
	tKW            // keyword (text)
	tPunct         // operator or bracket (text)
)

type token struct {
	kind tokKind
	text string
	val  uint32
	pos  int
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tNum:
		return fmt.Sprintf("number %q", t.text)
	case tKW:
		return fmt.Sprintf("keyword %q", t.text)
	case tPunct:
		return fmt.Sprintf("%q", t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

// keywords are the words libpcap's scanner reserves. Only a part of them is
// supported by the compiler; the others lex as keywords all the same so that
// they are reported as unsupported rather than as unknown host names.
var keywords = map[string]bool{}

// numericKeywords are the named constants of pcap-filter(7).
var numericKeywords = map[string]uint32{
	"icmptype": 0, "icmpcode": 1,
	"icmp-echoreply": 0, "icmp-unreach": 3, "icmp-sourcequench": 4, "icmp-redirect": 5,
	"icmp-echo": 8, "icmp-routeradvert": 9, "icmp-routersolicit": 10, "icmp-timxceed": 11,
	"icmp-paramprob": 12, "icmp-tstamp": 13, "icmp-tstampreply": 14, "icmp-ireq": 15,
	"icmp-ireqreply": 16, "icmp-maskreq": 17, "icmp-maskreply": 18,
	"icmp6type": 0, "icmp6code": 1,
	"icmp6-destinationunreach": 1, "icmp6-packettoobig": 2, "icmp6-timeexceeded": 3,
	"icmp6-parameterproblem": 4, "icmp6-echo": 128, "icmp6-echoreply": 129,
	"icmp6-multicastlistenerquery": 130, "icmp6-multicastlistenerreportv1": 131,
	"icmp6-multicastlistenerdone": 132, "icmp6-routersolicit": 133,
	"icmp6-routeradvert": 134, "icmp6-neighborsolicit": 135, "icmp6-neighboradvert": 136,
	"icmp6-redirect": 137, "icmp6-routerrenum": 138, "icmp6-nodeinformationquery": 139,
	"icmp6-nodeinformationresponse": 140, "icmp6-ineighbordiscoverysolicit": 141,
	"icmp6-ineighbordiscoveryadvert": 142, "icmp6-multicastlistenerreportv2": 143,
	"icmp6-homeagentdiscoveryrequest": 144, "icmp6-homeagentdiscoveryreply": 145,
	"icmp6-mobileprefixsolicit": 146, "icmp6-mobileprefixadvert": 147,
	"icmp6-certpathsolicit": 148, "icmp6-certpathadvert": 149,
	"icmp6-multicastrouteradvert": 151, "icmp6-multicastroutersolicit": 152,
	"icmp6-multicastrouterterm": 153,
	"tcpflags":                  13, "tcp-fin": 0x01, "tcp-syn": 0x02, "tcp-rst": 0x04, "tcp-push": 0x08,
	"tcp-ack": 0x10, "tcp-urg": 0x20, "tcp-ece": 0x40, "tcp-cwr": 0x80,
}

func init() {
	for _, w := range strings.Fields(`dst src host gateway net netmask mask port portrange
		proto protochain byte link ether ppp slip fddi tr wlan arp rarp ip sctp tcp udp
		icmp igmp igrp pim vrrp carp radio ip6 icmp6 ah esp atalk aarp decnet lat sca moprc
		mopdl iso esis es-is isis is-is l1 l2 iih lsp snp csnp psnp clnp stp ipx netbeui
		less greater broadcast multicast and or not len inbound outbound ifindex vlan mpls
		pppoed pppoes geneve lane llc metac bcc oam oamf4 connectmsg metaconnect vpi vci
		on ifname rnr rset srnr reason rulenum action type subtype direction dir addr1
		addr2 addr3 addr4 ra ta fisu lssu lsu sls dpc opc cic hfisu hlssu hlsu hsls hdpc
		hopc hcic`) {
		keywords[w] = true
	}
}

// lexer splits an expression into tokens on demand.
type lexer struct {
	src string
	pos int
}

func isIDStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isIDChar(c byte) bool { return isIDStart(c) || c == '-' || c == '_' || c == '.' }

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// matchID is the length of libpcap's name pattern at s:
// [A-Za-z0-9]([-_.A-Za-z0-9]*[.A-Za-z0-9])?
func matchID(s string) int {
	if len(s) == 0 || !isIDStart(s[0]) {
		return 0
	}
	n, best := 1, 1
	for n < len(s) && isIDChar(s[n]) {
		if s[n] != '-' && s[n] != '_' {
			best = n + 1
		}
		n++
	}
	return best
}

// matchNum is the length of a number: [0-9]+ or 0x[0-9a-f]+.
func matchNum(s string) int {
	if len(s) >= 3 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && isHex(s[2]) {
		n := 2
		for n < len(s) && isHex(s[n]) {
			n++
		}
		return n
	}
	n := 0
	for n < len(s) && isDigit(s[n]) {
		n++
	}
	return n
}

// matchHID is the length of N.N, N.N.N or N.N.N.N.
func matchHID(s string) int {
	n := matchNum(s)
	if n == 0 {
		return 0
	}
	best, parts := 0, 1
	for parts < 4 && n < len(s) && s[n] == '.' {
		m := matchNum(s[n+1:])
		if m == 0 {
			break
		}
		n += 1 + m
		parts++
		best = n
	}
	return best
}

// maxAddrLen is the longest address text: an IPv6 address with an IPv4
// tail, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" (an Ethernet
// address is at most 17).
const maxAddrLen = 45

// matchAddr finds the longest prefix of s that is an IPv6 address or an
// Ethernet address in one of libpcap's notations.
func matchAddr(s string) (int, tokKind) {
	n := 0
	// No address is longer than maxAddrLen, so longer prefixes need no
	// trying: trying them all made lexing a long run quadratic.
	for n < len(s) && n < maxAddrLen && (isHex(s[n]) || s[n] == ':' || s[n] == '.' || s[n] == '-') {
		n++
	}
	for ; n > 0; n-- {
		c := s[:n]
		if parseMAC(c) != nil {
			return n, tEID
		}
		if strings.Contains(c, ":") && !strings.Contains(c, "-") {
			if ip := net.ParseIP(c); ip != nil {
				return n, tHID6
			}
		}
	}
	return 0, tEOF
}

// parseMAC accepts xx:xx:xx:xx:xx:xx (also with '-' or '.', one or two
// digits a byte), xxxx.xxxx.xxxx and xxxxxxxxxxxx.
func parseMAC(s string) net.HardwareAddr {
	hexv := func(p string) (byte, bool) {
		var v byte
		for i := 0; i < len(p); i++ {
			c := p[i]
			switch {
			case c >= '0' && c <= '9':
				v = v<<4 | (c - '0')
			case c >= 'a' && c <= 'f':
				v = v<<4 | (c - 'a' + 10)
			case c >= 'A' && c <= 'F':
				v = v<<4 | (c - 'A' + 10)
			default:
				return 0, false
			}
		}
		return v, true
	}
	for _, sep := range []string{":", "-", "."} {
		parts := strings.Split(s, sep)
		if len(parts) != 6 {
			continue
		}
		mac := make(net.HardwareAddr, 6)
		ok := true
		for i, p := range parts {
			if len(p) < 1 || len(p) > 2 {
				ok = false
				break
			}
			if mac[i], ok = hexv(p); !ok {
				break
			}
		}
		if ok {
			return mac
		}
	}
	var flat string
	if parts := strings.Split(s, "."); len(parts) == 3 && len(parts[0]) == 4 && len(parts[1]) == 4 && len(parts[2]) == 4 {
		flat = parts[0] + parts[1] + parts[2]
	} else if len(s) == 12 {
		flat = s
	}
	if flat == "" {
		return nil
	}
	mac := make(net.HardwareAddr, 6)
	for i := range mac {
		v, ok := hexv(flat[2*i : 2*i+2])
		if !ok {
			return nil
		}
		mac[i] = v
	}
	return mac
}

// next returns the next token or a SyntaxError for a character that starts
// no token.
func (l *lexer) next() (token, error) {
	for l.pos < len(l.src) && strings.IndexByte(" \t\n\r", l.src[l.pos]) >= 0 {
		l.pos++
	}
	start := l.pos
	if l.pos >= len(l.src) {
		return token{kind: tEOF, pos: start}, nil
	}
	s := l.src[l.pos:]
	c := s[0]
	if c == '\\' {
		n := 1
		for n < len(s) && strings.IndexByte(" !()\n\t", s[n]) < 0 {
			n++
		}
		if n == 1 {
			return token{}, &SyntaxError{Pos: start, Msg: "a name must follow '\\'"}
		}
		l.pos += n
		return token{kind: tID, text: s[1:n], pos: start}, nil
	}
	for _, op := range []string{"&&", "||", "==", "!=", "<=", ">=", "<<", ">>"} {
		if strings.HasPrefix(s, op) {
			l.pos += 2
			return token{kind: tPunct, text: op, pos: start}, nil
		}
	}
	if c == ':' {
		if n, kind := matchAddr(s); n > 0 {
			l.pos += n
			return token{kind: kind, text: s[:n], pos: start}, nil
		}
	}
	if strings.IndexByte("()[]:!<>=&|+-*/%^", c) >= 0 {
		l.pos++
		return token{kind: tPunct, text: s[:1], pos: start}, nil
	}
	idLen := matchID(s)
	addrLen, addrKind := matchAddr(s)
	numLen := matchNum(s)
	hidLen := matchHID(s)
	best := max(idLen, addrLen, numLen, hidLen)
	if best == 0 {
		return token{}, &SyntaxError{Pos: start, Msg: fmt.Sprintf("illegal character %q", c)}
	}
	text := s[:best]
	l.pos += best
	tok := token{text: text, pos: start}
	switch {
	case addrLen == best && addrKind == tEID:
		tok.kind = tEID
	case numLen == best:
		v, err := parseNum(text)
		if err != nil {
			return token{}, &SyntaxError{Pos: start, Msg: err.Error()}
		}
		tok.kind, tok.val = tNum, v
	case hidLen == best:
		tok.kind = tHID
	case addrLen == best:
		tok.kind = addrKind
	case keywords[text]:
		tok.kind = tKW
	default:
		if v, ok := numericKeywords[text]; ok {
			tok.kind, tok.val = tNum, v
		} else {
			tok.kind = tID
		}
	}
	return tok, nil
}

// parseNum reads a number the way libpcap does: 0x hex, leading 0 octal,
// otherwise decimal; 32 bits at most.
func parseNum(s string) (uint32, error) {
	base, digits := uint64(10), s
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, digits = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, digits = 8, s[1:]
	}
	var v uint64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		}
		if d >= base {
			return 0, fmt.Errorf("number %s contains a non-octal digit", s)
		}
		v = v*base + d
		if v > 0xffffffff {
			return 0, fmt.Errorf("number %s overflows 32 bits", s)
		}
	}
	return uint32(v), nil
}

// parseHID reads a 1 to 4 part dotted IPv4 host id and returns the address
// left-aligned and the number of significant bits.
func parseHID(s string) (addr uint32, bits int, err error) {
	parts := strings.Split(s, ".")
	for _, p := range parts {
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil || v > 255 {
			return 0, 0, fmt.Errorf("bad IPv4 address %q: part %q is not a number from 0 to 255", s, p)
		}
		addr = addr<<8 | uint32(v)
	}
	bits = 8 * len(parts)
	if bits < 32 {
		addr <<= 32 - bits
	}
	return addr, bits, nil
}

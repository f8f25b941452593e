package filter

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Classic BPF opcode parts (linux/filter.h); x/net/bpf keeps its own
// unexported, and the compiler works on raw instructions.
const (
	clsLD   = 0x00
	clsLDX  = 0x01
	clsST   = 0x02
	clsSTX  = 0x03
	clsALU  = 0x04
	clsJMP  = 0x05
	clsRET  = 0x06
	clsMISC = 0x07

	szW = 0x00
	szH = 0x08
	szB = 0x10

	mIMM = 0x00
	mABS = 0x20
	mIND = 0x40
	mMEM = 0x60
	mLEN = 0x80
	mMSH = 0xa0

	aluADD = 0x00
	aluSUB = 0x10
	aluMUL = 0x20
	aluDIV = 0x30
	aluOR  = 0x40
	aluAND = 0x50
	aluLSH = 0x60
	aluRSH = 0x70
	aluNEG = 0x80
	aluMOD = 0x90
	aluXOR = 0xa0

	jmpJA   = 0x00
	jmpJEQ  = 0x10
	jmpJGT  = 0x20
	jmpJGE  = 0x30
	jmpJSET = 0x40

	srcK = 0x00
	srcX = 0x08

	retK = 0x00
	retA = 0x10

	miscTAX = 0x00
	miscTXA = 0x80

	// Ancillary data offsets of the Linux kernel (SKF_AD_*).
	skfADOff        = 0xfffff000
	skfVLANTag      = 44
	skfVLANTagPrsnt = 48
)

func sizeCode(size int) uint16 {
	switch size {
	case 1:
		return szB
	case 2:
		return szH
	}
	return szW
}

func stmt(op uint16, k uint32) bpf.RawInstruction { return bpf.RawInstruction{Op: op, K: k} }

// node is a predicate: the compiler builds a tree of them, then lays it out
// as short-circuit code. Evaluation order is left to right, as libpcap's,
// because a load past the end of a packet ends the whole program with 0
// and so the order of loads decides verdicts on truncated frames.
type node interface{ isNode() }

type nAnd struct{ a, b node }
type nOr struct{ a, b node }
type nNot struct{ a node }

// nTest runs stmts, then jumps on A compared with k (or with X).
type nTest struct {
	stmts []bpf.RawInstruction
	jop   uint16 // jmpJEQ, jmpJGT, jmpJGE, jmpJSET, with srcK or srcX
	k     uint32
}

// nConst is a predicate without code.
type nConst bool

func (nAnd) isNode()   {}
func (nOr) isNode()    {}
func (nNot) isNode()   {}
func (*nTest) isNode() {}
func (nConst) isNode() {}

func and(a, b node) node { return nAnd{a, b} }
func or(a, b node) node  { return nOr{a, b} }
func not(a node) node    { return nNot{a} }

// andAll ands predicates in order; nil entries are skipped.
func andAll(ns ...node) node {
	var r node
	for _, n := range ns {
		if n == nil {
			continue
		}
		if r == nil {
			r = n
		} else {
			r = and(r, n)
		}
	}
	return r
}

// offset is where a header starts: a constant, plus, in live programs
// after the first vlan keyword, a run-time part kept in scratch memory
// M[reg] (the outer tag may or may not be in the frame).
type offset struct {
	k   uint32
	reg int // -1: no run-time part
}

// Scratch memory: M[0] and M[1] hold the run-time parts of the link
// payload and link type offsets; relations use the rest.
const (
	regLinkPL     = 0
	regLinkType   = 1
	firstScratch  = 2
	scratchMemory = 16
)

// gen holds the code generator's state for one expression. Like libpcap's,
// it changes as the expression is read: each vlan keyword moves the
// headers that follow it by 4 bytes, whatever the operators around it.
type gen struct {
	mode       Mode
	linkType   offset // the Ethernet type field
	linkPL     offset // the link payload (network header)
	vlanDepth  int
	usesVarOff bool // live program needs M[0], M[1] zeroed first
}

func newGen(mode Mode) *gen {
	return &gen{mode: mode, linkType: offset{12, -1}, linkPL: offset{14, -1}}
}

// load returns the statements that load size bytes at o+k into A.
func load(o offset, k uint32, size int) []bpf.RawInstruction {
	if o.reg < 0 {
		return []bpf.RawInstruction{stmt(clsLD|sizeCode(size)|mABS, o.k+k)}
	}
	return []bpf.RawInstruction{
		stmt(clsLDX|szW|mMEM, uint32(o.reg)),
		stmt(clsLD|sizeCode(size)|mIND, o.k+k),
	}
}

// cmp tests the size bytes at o+k for equality with v.
func cmp(o offset, k uint32, size int, v uint32) node {
	return &nTest{stmts: load(o, k, size), jop: jmpJEQ | srcK, k: v}
}

// mcmp tests (bytes at o+k) & mask == v.
//
// A zero mask makes the test always true (v is then 0, as the callers
// check): libpcap's optimizer drops such a test with its load, so this does
// too, or a truncated frame would be judged differently.
func mcmp(o offset, k uint32, size int, v, mask uint32) node {
	if mask == 0 && v == 0 {
		return nConst(true)
	}
	s := load(o, k, size)
	if mask != 0xffffffff {
		s = append(s, stmt(clsALU|aluAND|srcK, mask))
	}
	return &nTest{stmts: s, jop: jmpJEQ | srcK, k: v}
}

func jtest(o offset, k uint32, size int, jop uint16, v uint32) node {
	return &nTest{stmts: load(o, k, size), jop: jop | srcK, k: v}
}

// bcmp compares a byte string the way libpcap does: the last whole word
// first, then half words, then a byte.
func bcmp(o offset, k uint32, v []byte) node {
	var r node
	size := uint32(len(v))
	for size >= 4 {
		p := v[size-4:]
		t := cmp(o, k+size-4, 4, uint32(p[0])<<24|uint32(p[1])<<16|uint32(p[2])<<8|uint32(p[3]))
		r = andAll(r, t)
		size -= 4
	}
	for size >= 2 {
		p := v[size-2:]
		r = andAll(r, cmp(o, k+size-2, 2, uint32(p[0])<<8|uint32(p[1])))
		size -= 2
	}
	if size > 0 {
		r = andAll(r, cmp(o, k, 1, uint32(v[0])))
	}
	return r
}

const (
	etherMTU      = 1500
	ethIP         = 0x0800
	ethARP        = 0x0806
	ethRARP       = 0x8035
	ethIPv6       = 0x86dd
	ethATalk      = 0x809b
	ethAARP       = 0x80f3
	ethIPX        = 0x8137
	eth8021Q      = 0x8100
	eth8021AD     = 0x88a8
	eth8021QinQ   = 0x9100
	llcSAPIP      = 0x06
	llcSAPISONS   = 0xfe
	llcSAPNetBEUI = 0xf0
	llcSAPIPX     = 0xe0
	llcSAPSNAP    = 0xaa

	ipprotoICMP   = 1
	ipprotoIGMP   = 2
	ipprotoTCP    = 6
	ipprotoIGRP   = 9
	ipprotoUDP    = 17
	ipprotoFrag   = 44
	ipprotoESP    = 50
	ipprotoAH     = 51
	ipprotoICMPv6 = 58
	ipprotoPIM    = 103
	ipprotoVRRP   = 112
	ipprotoSCTP   = 132
	protoUndef    = -1
)

// linkType tests the Ethernet type/length field for a protocol, with
// libpcap's treatment of 802.3 lengths and LLC SAPs.
func (g *gen) linkTypeTest(proto uint32) node {
	notLen := func() node { return not(jtest(g.linkType, 0, 2, jmpJGT, etherMTU)) }
	snap := func(org uint32, ptype uint32) node {
		b := []byte{llcSAPSNAP, llcSAPSNAP, 0x03, byte(org >> 16), byte(org >> 8), byte(org), byte(ptype >> 8), byte(ptype)}
		return bcmp(g.linkPL, 0, b)
	}
	switch proto {
	case llcSAPISONS, llcSAPIP, llcSAPNetBEUI:
		return and(notLen(), cmp(g.linkPL, 0, 2, proto<<8|proto))
	case llcSAPIPX:
		b1 := or(cmp(g.linkPL, 0, 1, llcSAPIPX), cmp(g.linkPL, 0, 2, 0xffff))
		b1 = or(snap(0, ethIPX), b1)
		b1 = and(notLen(), b1)
		return or(cmp(g.linkType, 0, 2, ethIPX), b1)
	case ethATalk, ethAARP:
		var s node
		if proto == ethATalk {
			s = snap(0x080007, ethATalk)
		} else {
			s = snap(0, ethAARP)
		}
		return or(cmp(g.linkType, 0, 2, proto), and(notLen(), s))
	}
	if proto <= etherMTU {
		return and(notLen(), cmp(g.linkPL, 0, 1, proto))
	}
	return cmp(g.linkType, 0, 2, proto)
}

// ipFrag is true for an IPv4 packet that is not a first fragment.
func (g *gen) ipNotFrag() node {
	return not(jtest(g.linkPL, 6, 2, jmpJSET, 0x1fff))
}

// loadXIPHdrLen sets X to the IPv4 header length plus the run-time part of
// the link payload offset.
func (g *gen) loadXIPHdrLen() []bpf.RawInstruction {
	if g.linkPL.reg < 0 {
		return []bpf.RawInstruction{stmt(clsLDX|szB|mMSH, g.linkPL.k)}
	}
	return []bpf.RawInstruction{
		stmt(clsLDX|szW|mMEM, uint32(g.linkPL.reg)),
		stmt(clsLD|szB|mIND, g.linkPL.k),
		stmt(clsALU|aluAND|srcK, 0xf),
		stmt(clsALU|aluLSH|srcK, 2),
		stmt(clsALU|aluADD|srcX, 0),
		stmt(clsMISC|miscTAX, 0),
	}
}

// tranV4 tests the half word at off in the IPv4 payload.
func (g *gen) tranV4(off uint32, jop uint16, v uint32) node {
	s := append(g.loadXIPHdrLen(), stmt(clsLD|szH|mIND, g.linkPL.k+off))
	return &nTest{stmts: s, jop: jop | srcK, k: v}
}

func (g *gen) tranV6(off uint32, jop uint16, v uint32) node {
	return jtest(g.linkPL, 40+off, 2, jop, v)
}

func (g *gen) protoV4(v uint32) node {
	return and(g.linkTypeTest(ethIP), cmp(g.linkPL, 9, 1, v))
}

func (g *gen) protoV6(v uint32) node {
	frag := and(cmp(g.linkPL, 6, 1, ipprotoFrag), cmp(g.linkPL, 40, 1, v))
	return and(g.linkTypeTest(ethIPv6), or(cmp(g.linkPL, 6, 1, v), frag))
}

// Protocol qualifiers.
type pq int

const (
	pDefault pq = iota
	pLink
	pIP
	pIP6
	pARP
	pRARP
	pTCP
	pUDP
	pSCTP
	pICMP
	pICMP6
	pIGMP
	pIGRP
	pPIM
	pVRRP
	pCARP
	pAH
	pESP
	pATalk
	pAARP
	pDECnet
	pLAT
	pSCA
	pMOPRC
	pMOPDL
	pISO
	pSTP
	pIPX
	pNetBEUI
)

var pqNames = map[string]pq{
	"link": pLink, "ether": pLink, "ppp": pLink, "slip": pLink, "fddi": pLink, "tr": pLink, "wlan": pLink,
	"ip": pIP, "ip6": pIP6, "arp": pARP, "rarp": pRARP, "tcp": pTCP, "udp": pUDP, "sctp": pSCTP,
	"icmp": pICMP, "icmp6": pICMP6, "igmp": pIGMP, "igrp": pIGRP, "pim": pPIM, "vrrp": pVRRP,
	"carp": pCARP, "ah": pAH, "esp": pESP, "atalk": pATalk, "aarp": pAARP, "decnet": pDECnet,
	"lat": pLAT, "sca": pSCA, "moprc": pMOPRC, "mopdl": pMOPDL, "iso": pISO, "stp": pSTP,
	"ipx": pIPX, "netbeui": pNetBEUI,
}

func (p pq) String() string {
	if p == pDefault {
		return "default"
	}
	if p == pLink {
		return "ether"
	}
	for n, v := range pqNames {
		if v == p && v != pLink {
			return n
		}
	}
	return fmt.Sprintf("pq(%d)", int(p))
}

// proto is `[ip|ip6|ether] proto N`.
func (g *gen) proto(v uint32, p pq) (node, error) {
	switch p {
	case pDefault:
		return or(g.protoV4(v), g.protoV6(v)), nil
	case pLink:
		return g.linkTypeTest(v), nil
	case pIP:
		return g.protoV4(v), nil
	case pIP6:
		return g.protoV6(v), nil
	}
	return nil, fmt.Errorf("'%s proto' is not supported (only ip, ip6 and ether encapsulate protocols)", p)
}

// abbrevs are the protocol names used alone (tcp, ip6, arp, ...) as the
// `[ip|ip6|ether] proto N` each stands for; in is pDefault for IPv4 and
// IPv6, pLink for an EtherType or (below 0x600) an LLC SAP.
var abbrevs = map[pq]struct {
	in pq
	v  uint32
}{
	pTCP: {pDefault, ipprotoTCP}, pUDP: {pDefault, ipprotoUDP}, pSCTP: {pDefault, ipprotoSCTP},
	pPIM: {pDefault, ipprotoPIM}, pAH: {pDefault, ipprotoAH}, pESP: {pDefault, ipprotoESP},
	pICMP: {pIP, ipprotoICMP}, pIGMP: {pIP, ipprotoIGMP}, pIGRP: {pIP, ipprotoIGRP},
	pVRRP: {pIP, ipprotoVRRP}, pCARP: {pIP, ipprotoVRRP}, pICMP6: {pIP6, ipprotoICMPv6},
	pIP: {pLink, ethIP}, pIP6: {pLink, ethIPv6}, pARP: {pLink, ethARP}, pRARP: {pLink, ethRARP},
	pATalk: {pLink, ethATalk}, pAARP: {pLink, ethAARP}, pDECnet: {pLink, 0x6003},
	pLAT: {pLink, 0x6004}, pSCA: {pLink, 0x6007}, pMOPRC: {pLink, 0x6002}, pMOPDL: {pLink, 0x6001},
	pISO: {pLink, llcSAPISONS}, pSTP: {pLink, 0x42}, pIPX: {pLink, llcSAPIPX},
	pNetBEUI: {pLink, llcSAPNetBEUI},
}

// abbrev is a protocol name used alone: tcp, ip6, arp, ...
func (g *gen) abbrev(p pq) (node, error) {
	if p == pLink {
		return nil, fmt.Errorf("'ether' alone is not a test: use ether host, ether proto, ether broadcast ...")
	}
	a, ok := abbrevs[p]
	if !ok {
		return nil, fmt.Errorf("protocol %s is not supported", p)
	}
	return g.proto(a.v, a.in)
}

// Direction qualifiers.
type dq int

const (
	dDefault dq = iota
	dSrc
	dDst
	dOr
	dAnd
)

// hostV4 is [ip|arp|rarp] [dir] host/net addr/mask.
func (g *gen) hostV4(addr, mask uint32, p pq, d dq, what string) (node, error) {
	switch p {
	case pDefault:
		b0, _ := g.hostV4(addr, mask, pIP, d, what)
		b1, _ := g.hostV4(addr, mask, pARP, d, what)
		b2, _ := g.hostV4(addr, mask, pRARP, d, what)
		return or(or(b0, b1), b2), nil
	case pIP:
		return g.hostOp(addr, mask, d, ethIP, 12, 16), nil
	case pARP:
		return g.hostOp(addr, mask, d, ethARP, 14, 24), nil
	case pRARP:
		return g.hostOp(addr, mask, d, ethRARP, 14, 24), nil
	case pLink:
		return nil, fmt.Errorf("'ether' applied to an IPv4 %s", what)
	case pIP6:
		return nil, fmt.Errorf("'ip6' applied to an IPv4 %s", what)
	}
	return nil, fmt.Errorf("'%s' applied to %s", p, what)
}

func (g *gen) hostOp(addr, mask uint32, d dq, ethType uint32, srcOff, dstOff uint32) node {
	switch d {
	case dSrc, dDst:
		o := srcOff
		if d == dDst {
			o = dstOff
		}
		return and(g.linkTypeTest(ethType), mcmp(g.linkPL, o, 4, addr, mask))
	case dAnd:
		return and(g.hostOp(addr, mask, dSrc, ethType, srcOff, dstOff), g.hostOp(addr, mask, dDst, ethType, srcOff, dstOff))
	}
	return or(g.hostOp(addr, mask, dSrc, ethType, srcOff, dstOff), g.hostOp(addr, mask, dDst, ethType, srcOff, dstOff))
}

func (g *gen) hostV6(addr, mask [16]byte, p pq, d dq, what string) (node, error) {
	if p != pDefault && p != pIP6 {
		return nil, fmt.Errorf("'%s' applied to an IPv6 %s", p, what)
	}
	return g.hostOp6(addr, mask, d), nil
}

func (g *gen) hostOp6(addr, mask [16]byte, d dq) node {
	switch d {
	case dSrc, dDst:
		o := uint32(8)
		if d == dDst {
			o = 24
		}
		w := func(b [16]byte, i int) uint32 {
			return uint32(b[4*i])<<24 | uint32(b[4*i+1])<<16 | uint32(b[4*i+2])<<8 | uint32(b[4*i+3])
		}
		var r node = g.linkTypeTest(ethIPv6)
		for i := 0; i < 4; i++ {
			r = and(r, mcmp(g.linkPL, o+uint32(4*i), 4, w(addr, i), w(mask, i)))
		}
		return r
	case dAnd:
		return and(g.hostOp6(addr, mask, dSrc), g.hostOp6(addr, mask, dDst))
	}
	return or(g.hostOp6(addr, mask, dSrc), g.hostOp6(addr, mask, dDst))
}

func (g *gen) etherHost(mac []byte, d dq) node {
	switch d {
	case dSrc:
		return bcmp(offset{0, -1}, 6, mac)
	case dDst:
		return bcmp(offset{0, -1}, 0, mac)
	case dAnd:
		return and(g.etherHost(mac, dSrc), g.etherHost(mac, dDst))
	}
	return or(g.etherHost(mac, dSrc), g.etherHost(mac, dDst))
}

// portTest builds `[tcp|udp|sctp] [dir] port|portrange lo-hi` for IPv4 and
// IPv6, IPv6 first, in libpcap's order (sctp, tcp, udp).
func (g *gen) portTest(lo, hi uint32, ipproto int, d dq) node {
	atom := func(tran func(off uint32, jop uint16, v uint32) node, off uint32) node {
		if lo == hi {
			return tran(off, jmpJEQ, lo)
		}
		return and(tran(off, jmpJGE, lo), not(tran(off, jmpJGT, hi)))
	}
	dirs := func(tran func(off uint32, jop uint16, v uint32) node) node {
		switch d {
		case dSrc:
			return atom(tran, 0)
		case dDst:
			return atom(tran, 2)
		case dAnd:
			return and(atom(tran, 0), atom(tran, 2))
		}
		return or(atom(tran, 0), atom(tran, 2))
	}
	v4op := func(pr uint32) node {
		return and(and(cmp(g.linkPL, 9, 1, pr), g.ipNotFrag()), dirs(g.tranV4))
	}
	v6op := func(pr uint32) node {
		return and(cmp(g.linkPL, 6, 1, pr), dirs(g.tranV6))
	}
	each := func(op func(uint32) node) node {
		if ipproto != protoUndef {
			return op(uint32(ipproto))
		}
		return or(op(ipprotoSCTP), or(op(ipprotoTCP), op(ipprotoUDP)))
	}
	v6 := and(g.linkTypeTest(ethIPv6), each(v6op))
	v4 := and(g.linkTypeTest(ethIP), each(v4op))
	return or(v6, v4)
}

// vlan is `vlan [id]`. Offline, the tags are in the frame. Live, the
// outermost tag may have been taken out by the kernel and be reported as
// ancillary data; libpcap then accepts either, and from there on the
// headers are at a run-time offset.
func (g *gen) vlan(id uint32, hasID bool) node {
	tpid := func(o offset, pre []bpf.RawInstruction) node {
		t1 := cmp(o, 0, 2, eth8021Q).(*nTest)
		t1.stmts = append(append([]bpf.RawInstruction(nil), pre...), t1.stmts...)
		return or(or(t1, cmp(o, 0, 2, eth8021AD)), cmp(o, 0, 2, eth8021QinQ))
	}
	var r node
	if g.mode == Live && g.vlanDepth == 0 && g.linkPL.reg < 0 {
		g.usesVarOff = true
		present := &nTest{stmts: []bpf.RawInstruction{stmt(clsLD|szW|mABS, skfADOff+skfVLANTagPrsnt)}, jop: jmpJEQ | srcK, k: 1}
		// When the tag is not out of band, it is in the frame: the
		// run-time offsets grow by 4 before the in-frame test, as
		// libpcap's code does.
		add := []bpf.RawInstruction{
			stmt(clsLD|szW|mMEM, regLinkPL), stmt(clsALU|aluADD|srcK, 4), stmt(clsST, regLinkPL),
			stmt(clsLD|szW|mMEM, regLinkType), stmt(clsALU|aluADD|srcK, 4), stmt(clsST, regLinkType),
		}
		r = or(present, tpid(g.linkType, add))
		if hasID {
			presentAgain := &nTest{stmts: present.stmts, jop: present.jop, k: 1}
			tci := &nTest{stmts: []bpf.RawInstruction{
				stmt(clsLD|szW|mABS, skfADOff+skfVLANTag), stmt(clsALU|aluAND|srcK, 0x0fff),
			}, jop: jmpJEQ | srcK, k: id}
			inFrame := mcmp(g.linkType, 2, 2, id, 0x0fff)
			r = and(r, or(and(presentAgain, tci), and(not(&nTest{stmts: present.stmts, jop: present.jop, k: 1}), inFrame)))
		}
		g.linkPL = offset{g.linkPL.k, regLinkPL}
		g.linkType = offset{g.linkType.k, regLinkType}
	} else {
		r = tpid(g.linkType, nil)
		if hasID {
			r = and(r, mcmp(g.linkPL, 0, 2, id, 0x0fff))
		}
		g.linkPL.k += 4
		g.linkType.k += 4
	}
	g.vlanDepth++
	return r
}

package filter

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// nested returns open repeated n times, then inner, then close n times.
func nested(open, inner, close string, n int) string {
	return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
}

// TestNestingLimit: every construct that nests stops at MaxNesting with
// an error at the opener one level too deep, and is accepted at
// MaxNesting; 2 M parentheses (which overflowed the stack) are refused.
func TestNestingLimit(t *testing.T) {
	type shape struct {
		name   string
		expr   func(n int) string
		prefix int    // bytes before the first opener
		opener string // the repeated text whose n+1st copy is refused
	}
	shapes := []shape{
		{"parentheses", func(n int) string { return nested("(", "tcp", ")", n) }, 0, "("},
		{"not", func(n int) string { return strings.Repeat("not ", n) + "tcp" }, 0, "not "},
		{"!", func(n int) string { return strings.Repeat("!", n) + "tcp" }, 0, "!"},
		{"value parentheses", func(n int) string { return "port " + nested("(", "80", ")", n) }, 5, "("},
		{"value not", func(n int) string { return "port " + strings.Repeat("not ", n) + "80" }, 5, "not "},
		{"arithmetic parentheses", func(n int) string { return "len = " + nested("(", "1", ")", n) }, 6, "("},
		{"minus", func(n int) string { return "len = " + strings.Repeat("-", n) + "1" }, 6, "-"},
		{"loads", func(n int) string { return nested("ip[", "0", "]", n) + " = 1" }, 0, "ip["},
		{"vlan", func(n int) string { return "vlan " + nested("(", "1", ")", n) }, 5, "("},
	}
	for _, s := range shapes {
		for _, mode := range []Mode{Offline, Live} {
			if _, err := Compile(s.expr(MaxNesting), mode, 0); err != nil && strings.Contains(err.Error(), "nested") {
				t.Errorf("%s, %d deep: %v", s.name, MaxNesting, err)
			}
			_, err := Compile(s.expr(MaxNesting+1), mode, 0)
			var se *SyntaxError
			if !errors.As(err, &se) || !strings.Contains(se.Msg, fmt.Sprintf("nested more than %d deep", MaxNesting)) {
				t.Errorf("%s, %d deep: %v, want a nesting error", s.name, MaxNesting+1, err)
				continue
			}
			if want := s.prefix + MaxNesting*len(s.opener); se.Pos != want {
				t.Errorf("%s: error at offset %d, want %d (the opener one too deep)", s.name, se.Pos, want)
			}
		}
	}
	for _, n := range []int{20000, 2000000} {
		_, err := Compile(nested("(", "tcp", ")", n), Offline, 0)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Fatalf("%d parentheses: %v, want a SyntaxError", n, err)
		}
		if len(err.Error()) > 1000 {
			t.Errorf("%d parentheses: the error is %d bytes long", n, len(err.Error()))
		}
		t.Logf("%d parentheses: %v", n, err)
	}
}

// TestExpressionLengthLimit: an expression over MaxExprLen is refused
// before it is read, naming its length.
func TestExpressionLengthLimit(t *testing.T) {
	long := "tcp" + strings.Repeat(" ", MaxExprLen)
	_, err := Compile(long, Offline, 0)
	var se *SyntaxError
	if !errors.As(err, &se) || se.Pos != MaxExprLen || !strings.Contains(se.Msg, fmt.Sprint(len(long), " bytes long")) {
		t.Fatalf("%d bytes: %v, want a SyntaxError at %d naming the length", len(long), err, MaxExprLen)
	}
	if _, err := Compile(long[:MaxExprLen], Offline, 0); err != nil {
		t.Fatalf("%d bytes: %v", MaxExprLen, err)
	}
}

// countTokens lexes expr once: the tokens a parser without backtracking
// would read.
func countTokens(t *testing.T, expr string) int {
	l := lexer{src: expr}
	for n := 0; ; n++ {
		tok, err := l.next()
		if err != nil {
			t.Fatalf("lexing %.60q: %v", expr, err)
		}
		if tok.kind == tEOF {
			return n + 1
		}
	}
}

// TestParseIsLinear: parsing reads each token a bounded number of times
// whatever the nesting (a relation tried at every level of parentheses
// read everything below it again: 10 000 levels took 28 s).
func TestParseIsLinear(t *testing.T) {
	group := func(inner string) string {
		g := nested("(", inner, ")", MaxNesting-1)
		n := MaxExprLen / (len(g) + 4)
		return strings.TrimSuffix(strings.Repeat(g+" or ", n), " or ")
	}
	for _, expr := range []string{
		group("port 80"),
		group("1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 = len"),
		group("ip[0] & 0xf > 5 and tcp"),
		group("host 10.0.0.1 or 10.0.0.2"),
		"port " + group("80 or 443"),
		strings.Repeat("not ", MaxNesting) + "tcp",
	} {
		p := newParser(expr, Offline)
		if _, err := p.parse(); err != nil {
			t.Fatalf("%.60q: %v", expr, err)
		}
		tokens := countTokens(t, expr)
		if p.lexed > 3*tokens {
			t.Errorf("%.60q (%d bytes): read %d tokens for %d, want at most 3 times", expr, len(expr), p.lexed, tokens)
		}
	}
}

// TestLexingLongRunsIsLinear: a long run of address characters is tried
// as an address only up to the longest address (every prefix was parsed:
// 10 KB took a second). The work, counted in allocations, doubles when
// the run doubles.
func TestLexingLongRunsIsLinear(t *testing.T) {
	lexAll := func(src string) float64 {
		return testing.AllocsPerRun(1, func() {
			l := lexer{src: src}
			for {
				tok, err := l.next()
				if err != nil || tok.kind == tEOF {
					return
				}
			}
		})
	}
	n := 5000
	if testing.Short() {
		n = 1000 // make check: the race detector makes allocations slow
	}
	for _, unit := range []string{"a:", "1.", "a-", "1:"} {
		short, long := lexAll(strings.Repeat(unit, n)), lexAll(strings.Repeat(unit, 4*n))
		if long > 5*short+100 {
			t.Errorf("lexing %q repeated: %.0f allocations for %d, %.0f for %d, want about 4 times", unit, short, n, long, 4*n)
		}
	}
}

// TestHugeExpressionRefusedBeforeOptimising: 1600 ports (which took 14 s
// to reach the kernel's limit) are refused once laid out, before the
// optimiser, and laying out stops growing at the bound.
func TestHugeExpressionRefusedBeforeOptimising(t *testing.T) {
	var ports []string
	for i := 1; i <= 1600; i++ {
		ports = append(ports, fmt.Sprint(i))
	}
	for _, expr := range []string{
		"port " + strings.Join(ports, " or "),
		strings.TrimSuffix(strings.Repeat("tcp or ", 3000), " or "),
	} {
		for _, mode := range []Mode{Offline, Live} {
			_, err := Compile(expr, mode, 0)
			if !errors.Is(err, errTooLarge) || !strings.Contains(err.Error(), "4096") {
				t.Errorf("%.40q: %v, want the too-large error naming the kernel's limit", expr, err)
			}
			_, err = CompileRules([]Rule{{Expr: "arp", Snap: 64}, {Expr: expr, Snap: 96}}, mode, 0)
			if !errors.Is(err, errTooLarge) || !strings.HasPrefix(err.Error(), "rule 2: ") {
				t.Errorf("%.40q as rule 2: %v, want the too-large error naming the rule", expr, err)
			}
			p := newParser(expr, mode)
			n, err := p.parse()
			if err != nil {
				t.Fatal(err)
			}
			a := &asm{abort: noLabel}
			a.node(n, a.newLabel(), a.newLabel())
			if a.size() > maxUnoptimized+64 {
				t.Errorf("%.40q: laid out %d instructions, want to stop near %d", expr, a.size(), maxUnoptimized)
			}
		}
	}
}

// TestLongErrorQuotesAnExcerpt: a syntax error in a long expression
// quotes the expression around the offset only.
func TestLongErrorQuotesAnExcerpt(t *testing.T) {
	expr := strings.Repeat("tcp or ", 5000) + "bogus$"
	_, err := Compile(expr, Offline, 0)
	var se *SyntaxError
	if !errors.As(err, &se) || se.Expr != expr {
		t.Fatalf("%v, want a SyntaxError holding the expression", err)
	}
	msg := err.Error()
	if len(msg) > 600 || !strings.Contains(msg, fmt.Sprintf("offset %d", se.Pos)) || !strings.Contains(msg, "bogus") {
		t.Errorf("error of %d bytes: %.300s", len(msg), msg)
	}
}

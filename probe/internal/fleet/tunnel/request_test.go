package tunnel

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	r, err := Parse([]byte("# asked on the phone\nweb = 20001\r\nstatus=20002\n\nby=alice\nreason=ticket 4711: one-way audio # not a comment\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Request{Web: 20001, Status: 20002, By: "alice", Reason: "ticket 4711: one-way audio # not a comment"}
	if r != want {
		t.Fatalf("got %+v, want %+v", r, want)
	}
	if r, err := Parse([]byte("status=65535")); err != nil || r != (Request{Status: 65535}) {
		t.Fatalf("status alone: %+v, %v", r, err)
	}
}

// TestParseRefuses: each bad file is refused naming its byte, line or key;
// nothing in it can name a host, a bind address or a local target.
func TestParseRefuses(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "neither given"},
		{"by=alice\n", "web, status: neither given"},
		{"web=80", "line 1: web: \"80\": want a port 1024 to 65535"},
		{"web=1023", "web: \"1023\""},
		{"web=65536", "web: \"65536\""},
		{"web=-20001", "web: \"-20001\""},
		{"web=0x4e21", "web: \"0x4e21\""},
		{"web=20001\nstatus=20001", "status: 20001 is web's port too"},
		{"web=20001\nweb=20002", "line 2: web given twice"},
		{"web=20001\nbind=0.0.0.0", "line 2: bind: unknown key"},
		{"web=0.0.0.0:20001", "web: \"0.0.0.0:20001\""},
		{"target=127.0.0.1:22\nweb=20001", "line 1: target: unknown key"},
		{"web 20001", "line 1: \"web 20001\" is not key=value"},
		{"web=20001\nby=al\x07ice", "byte 15: control character U+0007"},
		{"web=20001\nby=\xff", "byte 13: 0xff is not UTF-8"},
		{"web=20001\nby=" + strings.Repeat("a", MaxBy+1), "line 2: by: 65 characters, more than 64"},
		{"web=20001\nreason=" + strings.Repeat("é", MaxReason+1), "reason: 201 characters"},
		{strings.Repeat("#", MaxFile+1), "larger than 4096 bytes"},
	} {
		_, err := Parse([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", c.in, err, c.want)
		}
	}
}

package field

import (
	"errors"
	"io"
	"testing"
)

// TestUnder: a section's relative names become paths below its key; the
// underlying error is kept.
func TestUnder(t *testing.T) {
	var sub Errors
	sub.Add("", "no way")
	sub.Add("[1].interface", "is empty")
	sub.AddErr("ports[0].side", "bad", io.EOF)
	var es Errors
	es.Under("network", sub)
	want := []string{"network: no way", "network[1].interface: is empty", "network.ports[0].side: bad: EOF"}
	if len(es) != len(want) {
		t.Fatalf("Under = %v, want %q", es, want)
	}
	for i, e := range es {
		if e.Error() != want[i] {
			t.Errorf("error %d = %q, want %q", i, e.Error(), want[i])
		}
	}
	if !errors.Is(es[2], io.EOF) {
		t.Error("Under lost the underlying error")
	}
}

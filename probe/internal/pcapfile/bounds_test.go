package pcapfile

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"testing"
)

// readAllErr reads b to its end and returns the first error (nil at EOF).
func readAllErr(b []byte) ([]Packet, error) {
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	var ps []Packet
	for {
		p, err := r.Next()
		if err == io.EOF {
			return ps, nil
		}
		if err != nil {
			return ps, err
		}
		ps = append(ps, p)
	}
}

// ngWithOffset is a pcapng file with one interface whose if_tsoffset is
// offset seconds and one packet at ts (ns), and the byte where the
// option's value starts.
func ngWithOffset(t *testing.T, offset int64, ts int64) ([]byte, int) {
	t.Helper()
	var b bytes.Buffer
	n, err := NewPCAPNG(&b, "")
	if err != nil {
		t.Fatal(err)
	}
	n.Flush()
	idb := b.Len()
	body := make([]byte, 8)
	binary.LittleEndian.PutUint16(body, 1)
	binary.LittleEndian.PutUint32(body[4:], 65535)
	opts := appendOption(nil, 14, binary.LittleEndian.AppendUint64(nil, uint64(offset)))
	opts = appendOption(opts, 9, []byte{9})
	opts = appendOption(opts, 0, nil)
	if err := n.block(1, body, opts); err != nil {
		t.Fatal(err)
	}
	n.ifaces = append(n.ifaces, Interface{LinkType: 1, SnapLen: 65535})
	if err := n.WritePacket(0, ts, 3, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	n.Flush()
	return b.Bytes(), idb + 16 + 4
}

// TestTSOffsetOverflowIsAnError: an if_tsoffset that cannot be a time, or
// that pushes a packet's time past int64 nanoseconds, is an error naming
// the field and the byte (it used to wrap to a time in another century).
func TestTSOffsetOverflowIsAnError(t *testing.T) {
	const ts = int64(1_767_225_600_000_000_000)
	b, _ := ngWithOffset(t, 3600, ts)
	ps, err := readAllErr(b)
	if err != nil || len(ps) != 1 || ps[0].Time != ts+3600e9 {
		t.Fatalf("offset 3600: %v, %+v", err, ps)
	}
	b, at := ngWithOffset(t, 1<<62, ts)
	_, err = readAllErr(b)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("if_tsoffset %d at byte %d", int64(1)<<62, at)) {
		t.Errorf("offset 2^62: %v, want an error naming if_tsoffset at byte %d", err, at)
	}
	for _, off := range []int64{maxSec, maxSec - 1e9} {
		b, _ = ngWithOffset(t, off, ts)
		_, err = readAllErr(b)
		if err == nil || !strings.Contains(err.Error(), "packet 1 at byte") || !strings.Contains(err.Error(), fmt.Sprintf("if_tsoffset %d", off)) {
			t.Errorf("offset %d: %v, want an error for packet 1 naming if_tsoffset", off, err)
		}
	}
}

// TestBadInterfaceNamesAreErrors: an if_name that is a path, has control
// characters or is 10 KB long is an error naming the field and its byte.
func TestBadInterfaceNamesAreErrors(t *testing.T) {
	var shb bytes.Buffer
	n, _ := NewPCAPNG(&shb, "a window")
	n.Flush()
	at := shb.Len() + 16 + 4 // the name is the first option
	for _, name := range []string{"../../etc/passwd", "eth0/x", "..", "eth\x000", "bad\nname", strings.Repeat("x", 10<<10)} {
		b := write(t, "pcapng", []Interface{{Name: name, LinkType: 1}})
		_, err := readAllErr(b)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("if_name at byte %d", at)) || len(err.Error()) > 1000 {
			t.Errorf("name %.40q: %.300v, want an error naming if_name at byte %d", name, err, at)
		}
	}
	for _, name := range []string{"eth0", `\Device\NPF_{3B9B1B4A-0C6A-4D5F-9F1E-2A9F1E2A9F1E}`, "wlan0 (Wi-Fi)"} {
		b := write(t, "pcapng", []Interface{{Name: name, LinkType: 1}})
		if _, err := readAllErr(b); err != nil {
			t.Errorf("name %q: %v", name, err)
		}
	}
}

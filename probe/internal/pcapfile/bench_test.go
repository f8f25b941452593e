package pcapfile

import (
	"bufio"
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// benchFrames is a window's mix: small signalling packets, header-sliced
// bulk (the default ring rules keep 160 bytes) and whole full-size frames,
// alternating between two interfaces, the first captured inbound.
var benchFrames = func() []pkt {
	sizes := []struct{ capLen, orig int }{{64, 64}, {160, 1514}, {590, 590}, {1514, 1514}}
	var ps []pkt
	for i := range 64 {
		s := sizes[i%len(sizes)]
		ps = append(ps, pkt{i % 2, 1_767_225_600_000_000_000 + int64(i)*1_234_567, uint32(s.orig), bytes.Repeat([]byte{byte(i)}, s.capLen)})
	}
	return ps
}()

var benchIfaces = []Interface{{Name: "eth0", LinkType: 1, Description: "side router", Inbound: true}, {Name: "eth1", LinkType: 1}}

// The writer benchmarks write one packet per op into io.Discard, each
// writer behind a 256 KiB buffer as the export uses it; ns/op is ns/packet.
// Run with: go test -run '^$' -bench . -benchmem ./probe/internal/pcapfile/
func BenchmarkWrite(b *testing.B) {
	for _, format := range []string{"pcap", "pcapng"} {
		b.Run(format+"/pcapfile", func(b *testing.B) {
			w, err := NewWriter(io.Discard, format, benchIfaces[:1+btoi(format == "pcapng")], "a window")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				p := benchFrames[i%len(benchFrames)]
				if format == "pcap" {
					p.iface = 0
				}
				if err := w.WritePacket(p.iface, p.t, p.orig, p.data); err != nil {
					b.Fatal(err)
				}
			}
			w.Flush()
		})
	}
	b.Run("pcap/pcapgo", func(b *testing.B) {
		bw := bufio.NewWriterSize(io.Discard, bufSize)
		w := pcapgo.NewWriterNanos(bw)
		if err := w.WriteFileHeader(DefaultSnapLen, layers.LinkTypeEthernet); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			p := benchFrames[i%len(benchFrames)]
			ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, p.t), CaptureLength: len(p.data), Length: int(p.orig)}
			if err := w.WritePacket(ci, p.data); err != nil {
				b.Fatal(err)
			}
		}
		bw.Flush()
	})
	b.Run("pcapng/pcapgo", func(b *testing.B) {
		bw := bufio.NewWriterSize(io.Discard, bufSize)
		w, err := pcapgo.NewNgWriterInterface(bw, pcapgo.NgInterface{Name: "eth0", Description: "side router", LinkType: layers.LinkTypeEthernet, SnapLength: DefaultSnapLen},
			pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "presscap", Comment: "a window"}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := w.AddInterface(pcapgo.NgInterface{Name: "eth1", LinkType: layers.LinkTypeEthernet, SnapLength: DefaultSnapLen}); err != nil {
			b.Fatal(err)
		}
		inbound := &pcapgo.NgEpbFlags{Direction: pcapgo.NgEpbFlagDirectionInbound}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			p := benchFrames[i%len(benchFrames)]
			ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, p.t), CaptureLength: len(p.data), Length: int(p.orig), InterfaceIndex: p.iface}
			var opts pcapgo.NgPacketOptions
			if p.iface == 0 {
				opts.Flags = inbound
			}
			if err := w.WritePacketWithOptions(ci, p.data, opts); err != nil {
				b.Fatal(err)
			}
		}
		w.Flush()
		bw.Flush()
	})
}

// The reader benchmarks read a file of 4096 packets written by NewWriter
// over and over (a new reader at each end: amortised, the same for both);
// ns/op is ns/packet. pcapgo is measured with its zero-copy read, the
// same contract as Reader.Next (data valid until the next call).
func BenchmarkRead(b *testing.B) {
	for _, format := range []string{"pcap", "pcapng"} {
		var file bytes.Buffer
		w, err := NewWriter(&file, format, benchIfaces[:1+btoi(format == "pcapng")], "a window")
		if err != nil {
			b.Fatal(err)
		}
		for i := range 4096 {
			p := benchFrames[i%len(benchFrames)]
			if format == "pcap" {
				p.iface = 0
			}
			if err := w.WritePacket(p.iface, p.t, p.orig, p.data); err != nil {
				b.Fatal(err)
			}
		}
		w.Flush()
		b.Run(format+"/pcapfile", func(b *testing.B) {
			var r *Reader
			b.ReportAllocs()
			for range b.N {
				if r == nil {
					if r, err = NewReader(bytes.NewReader(file.Bytes())); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := r.Next(); err == io.EOF {
					r = nil
				} else if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(format+"/pcapgo", func(b *testing.B) {
			var r interface {
				ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error)
			}
			b.ReportAllocs()
			for range b.N {
				if r == nil {
					var err error
					if format == "pcap" {
						r, err = pcapgo.NewReader(bytes.NewReader(file.Bytes()))
					} else {
						r, err = pcapgo.NewNgReader(bytes.NewReader(file.Bytes()), pcapgo.DefaultNgReaderOptions)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				if _, _, err := r.ZeroCopyReadPacketData(); err == io.EOF {
					r = nil
				} else if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestNoAllocationPerPacket: writing and reading a packet allocates nothing
// (the pcapng writer's trailer and the pcap reader's record header used to
// escape to the heap, one allocation a packet; pcapgo's pcapng writer still
// allocates one for a packet with epb_flags).
func TestNoAllocationPerPacket(t *testing.T) {
	for _, format := range []string{"pcap", "pcapng"} {
		ifaces := benchIfaces[:1+btoi(format == "pcapng")]
		var file bytes.Buffer
		w, err := NewWriter(&file, format, ifaces, "a window")
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		if n := testing.AllocsPerRun(1000, func() {
			p := benchFrames[i%len(benchFrames)]
			i++
			if err := w.WritePacket(min(p.iface, len(ifaces)-1), p.t, p.orig, p.data); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: WritePacket allocates %.1f times a packet", format, n)
		}
		w.Flush()
		r, err := NewReader(bytes.NewReader(file.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(1000, func() {
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: Next allocates %.1f times a packet", format, n)
		}
	}
}

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

// BenchmarkWrite and BenchmarkRead give each side's allocations a packet
// (-benchmem; ns/op is ns/packet, but timed one after the other: for the
// ratio see BenchmarkInterleaved). Each writer is behind the same 256 KiB
// buffer into io.Discard; the readers read a file of 4096 packets over and
// over, pcapgo's with its zero-copy read, the contract of Reader.Next.
// Run with: go test -run '^$' -bench 'Write|Read' -benchmem ./probe/internal/pcapfile/
func BenchmarkWrite(b *testing.B) {
	for _, format := range []string{"pcap", "pcapng"} {
		ifaces, ours, theirs := benchWriters(b, format)
		for _, side := range []struct {
			name  string
			write func(pkt) error
		}{{"pcapfile", ours}, {"pcapgo", theirs}} {
			b.Run(format+"/"+side.name, func(b *testing.B) {
				b.ReportAllocs()
				for i := range b.N {
					if err := side.write(benchFrame(i, ifaces)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkRead(b *testing.B) {
	for _, format := range []string{"pcap", "pcapng"} {
		file := benchFile(b, format, 4096)
		for _, side := range []struct {
			name string
			open func() (func() error, error)
		}{
			{"pcapfile", func() (func() error, error) {
				r, err := NewReader(bytes.NewReader(file))
				return func() error { _, err := r.Next(); return err }, err
			}},
			{"pcapgo", func() (func() error, error) { return newPcapgoReader(format, file) }},
		} {
			b.Run(format+"/"+side.name, func(b *testing.B) {
				b.ReportAllocs()
				var next func() error
				for range b.N {
					if next == nil {
						var err error
						if next, err = side.open(); err != nil {
							b.Fatal(err)
						}
					}
					if err := next(); err == io.EOF {
						next = nil
					} else if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkInterleaved times our writer and reader and pcapgo's on the same
// frames in alternation, a turn at a time, so that both see the same load on
// a shared machine; it reports each side's ns/packet and the ratio
// pcapgo/pcapfile (above 1: pcapgo is slower).
// Run with: go test -run '^$' -bench Interleaved -benchtime 300x -count 7 ./probe/internal/pcapfile/
func BenchmarkInterleaved(b *testing.B) {
	const turn = 1024
	for _, format := range []string{"pcap", "pcapng"} {
		b.Run("write/"+format, func(b *testing.B) {
			ifaces, ours, theirs := benchWriters(b, format)
			run := func(write func(pkt) error) time.Duration {
				t0 := time.Now()
				for i := range turn {
					if err := write(benchFrame(i, ifaces)); err != nil {
						b.Fatal(err)
					}
				}
				return time.Since(t0)
			}
			var a, g time.Duration
			for range b.N {
				a += run(ours)
				g += run(theirs)
			}
			report(b, a, g, b.N*turn)
		})
		b.Run("read/"+format, func(b *testing.B) {
			// A turn reads a whole file of 8 turns' packets, so that
			// opening it (a 256 KiB buffer each) weighs little.
			const packets = 8 * turn
			file := benchFile(b, format, packets)
			run := func(next func() error, err error) {
				if err != nil {
					b.Fatal(err)
				}
				for range packets {
					if err := next(); err != nil {
						b.Fatal(err)
					}
				}
			}
			var a, g time.Duration
			for range b.N {
				t0 := time.Now()
				r, err := NewReader(bytes.NewReader(file))
				run(func() error { _, err := r.Next(); return err }, err)
				a += time.Since(t0)
				t0 = time.Now()
				run(newPcapgoReader(format, file))
				g += time.Since(t0)
			}
			report(b, a, g, b.N*packets)
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func benchFrame(i int, ifaces []Interface) pkt {
	p := benchFrames[i%len(benchFrames)]
	p.iface = min(p.iface, len(ifaces)-1)
	return p
}

// benchFile is a file of n packets written by NewWriter.
func benchFile(b *testing.B, format string, n int) []byte {
	ifaces := benchIfaces[:1+btoi(format == "pcapng")]
	var file bytes.Buffer
	w, err := NewWriter(&file, format, ifaces, "a window")
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		p := benchFrame(i, ifaces)
		if err := w.WritePacket(p.iface, p.t, p.orig, p.data); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	return file.Bytes()
}

// newPcapgoReader opens file with pcapgo and returns its zero-copy read.
func newPcapgoReader(format string, file []byte) (func() error, error) {
	var r interface {
		ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	var err error
	if format == "pcap" {
		r, err = pcapgo.NewReader(bytes.NewReader(file))
	} else {
		r, err = pcapgo.NewNgReader(bytes.NewReader(file), pcapgo.DefaultNgReaderOptions)
	}
	if err != nil {
		return nil, err
	}
	return func() error { _, _, err := r.ZeroCopyReadPacketData(); return err }, nil
}

// benchWriters returns a format's interfaces and the per-packet functions
// of our writer and pcapgo's, both writing into io.Discard.
func benchWriters(b *testing.B, format string) (ifaces []Interface, ours, theirs func(pkt) error) {
	ifaces = benchIfaces[:1+btoi(format == "pcapng")]
	w, err := NewWriter(io.Discard, format, ifaces, "a window")
	if err != nil {
		b.Fatal(err)
	}
	theirs, err = newPcapgoWriter(format, ifaces)
	if err != nil {
		b.Fatal(err)
	}
	return ifaces, func(p pkt) error { return w.WritePacket(p.iface, p.t, p.orig, p.data) }, theirs
}

// newPcapgoWriter writes what NewWriter writes, through pcapgo, behind the
// same 256 KiB buffer, and returns its per-packet function.
func newPcapgoWriter(format string, ifaces []Interface) (func(pkt) error, error) {
	bw := bufio.NewWriterSize(io.Discard, bufSize)
	ci := func(p pkt) gopacket.CaptureInfo {
		return gopacket.CaptureInfo{Timestamp: time.Unix(0, p.t), CaptureLength: len(p.data), Length: int(p.orig), InterfaceIndex: p.iface}
	}
	if format == "pcap" {
		w := pcapgo.NewWriterNanos(bw)
		if err := w.WriteFileHeader(DefaultSnapLen, layers.LinkType(ifaces[0].LinkType)); err != nil {
			return nil, err
		}
		return func(p pkt) error { return w.WritePacket(ci(p), p.data) }, nil
	}
	ngIface := func(ifc Interface) pcapgo.NgInterface {
		return pcapgo.NgInterface{Name: ifc.Name, Description: ifc.Description, LinkType: layers.LinkType(ifc.LinkType), SnapLength: snapOf(ifc)}
	}
	w, err := pcapgo.NewNgWriterInterface(bw, ngIface(ifaces[0]), pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "presscap", Comment: "a window"}})
	if err != nil {
		return nil, err
	}
	for _, ifc := range ifaces[1:] {
		if _, err := w.AddInterface(ngIface(ifc)); err != nil {
			return nil, err
		}
	}
	inbound := &pcapgo.NgEpbFlags{Direction: pcapgo.NgEpbFlagDirectionInbound}
	return func(p pkt) error {
		var opts pcapgo.NgPacketOptions
		if ifaces[p.iface].Inbound {
			opts.Flags = inbound
		}
		return w.WritePacketWithOptions(ci(p), p.data, opts)
	}, nil
}

func report(b *testing.B, ours, pcapgo time.Duration, packets int) {
	b.ReportMetric(float64(ours.Nanoseconds())/float64(packets), "pcapfile-ns/pkt")
	b.ReportMetric(float64(pcapgo.Nanoseconds())/float64(packets), "pcapgo-ns/pkt")
	b.ReportMetric(float64(pcapgo)/float64(ours), "pcapgo/pcapfile")
	b.ReportMetric(0, "ns/op")
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

package ovf

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/testtool"
)

const (
	ovfNS  = "http://schemas.dmtf.org/ovf/envelope/1"
	rasdNS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
)

// node is a generic XML element, so the check reads the descriptor as an
// importer would rather than through the writer's own types.
type node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []*node    `xml:",any"`
}

func (n *node) attr(ns, local string) string {
	for _, a := range n.Attrs {
		if a.Name.Space == ns && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

func (n *node) all(ns, local string) []*node {
	var out []*node
	for _, c := range n.Children {
		if c.XMLName.Space == ns && c.XMLName.Local == local {
			out = append(out, c)
		}
	}
	return out
}

func (n *node) one(ns, local string) *node {
	if c := n.all(ns, local); len(c) == 1 {
		return c[0]
	}
	return nil
}

func (n *node) rasd(local string) string {
	if c := n.one(rasdNS, local); c != nil {
		return strings.TrimSpace(c.Text)
	}
	return ""
}

type member struct {
	name string
	data []byte
}

// checkOVA checks an OVA the way DSP0243 (OVF 1.x) and the importers
// require it, returning every problem: member order, the descriptor's
// required elements and attributes, that every reference resolves, file
// sizes, disk capacities against qemu-img's reading of each VMDK, the
// hardware the VM edition needs, and the manifest's SHA-256 digests.
func checkOVA(t *testing.T, ova string) []error {
	t.Helper()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	f, err := os.Open(ova)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var members []member
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return append(errs, fmt.Errorf("tar: %w", err))
		}
		if h.Format != tar.FormatUSTAR && h.Format != tar.FormatUnknown {
			bad("%s: tar format %v, want USTAR", h.Name, h.Format)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return append(errs, err)
		}
		members = append(members, member{h.Name, b})
	}
	if len(members) < 3 || !strings.HasSuffix(members[0].name, ".ovf") || !strings.HasSuffix(members[1].name, ".mf") {
		var names []string
		for _, m := range members {
			names = append(names, m.name)
		}
		return append(errs, fmt.Errorf("members %v: want the .ovf first, the .mf second, then the disks", names))
	}
	byName := map[string][]byte{}
	for _, m := range members {
		byName[m.name] = m.data
	}

	var env node
	if err := xml.Unmarshal(members[0].data, &env); err != nil {
		return append(errs, fmt.Errorf("descriptor: %w", err))
	}
	if env.XMLName.Space != ovfNS || env.XMLName.Local != "Envelope" {
		bad("root element %v, want Envelope in %s", env.XMLName, ovfNS)
	}
	needInfo := func(n *node, what string) {
		if n == nil {
			bad("%s missing", what)
			return
		}
		if i := n.one(ovfNS, "Info"); i == nil || strings.TrimSpace(i.Text) == "" {
			bad("%s has no Info", what)
		}
	}
	refs := env.one(ovfNS, "References")
	if refs == nil {
		return append(errs, fmt.Errorf("no References"))
	}
	files := map[string]string{} // id -> href
	for _, fl := range refs.all(ovfNS, "File") {
		id, href := fl.attr(ovfNS, "id"), fl.attr(ovfNS, "href")
		if id == "" || href == "" {
			bad("File %v lacks ovf:id or ovf:href", fl.Attrs)
			continue
		}
		files[id] = href
		data, ok := byName[href]
		if !ok {
			bad("File %s: %s is not in the archive", id, href)
			continue
		}
		if sz := fl.attr(ovfNS, "size"); sz != fmt.Sprint(len(data)) {
			bad("File %s: ovf:size %q, the member has %d bytes", id, sz, len(data))
		}
	}
	ds := env.one(ovfNS, "DiskSection")
	needInfo(ds, "DiskSection")
	disks := map[string]bool{}
	if ds != nil {
		for _, d := range ds.all(ovfNS, "Disk") {
			id, capacity, ref := d.attr(ovfNS, "diskId"), d.attr(ovfNS, "capacity"), d.attr(ovfNS, "fileRef")
			if id == "" || capacity == "" {
				bad("Disk %v lacks ovf:diskId or ovf:capacity", d.Attrs)
				continue
			}
			disks[id] = true
			href, ok := files[ref]
			if !ok {
				bad("Disk %s: fileRef %q names no File", id, ref)
				continue
			}
			if u := d.attr(ovfNS, "capacityAllocationUnits"); u != "" && u != "byte" {
				bad("Disk %s: capacityAllocationUnits %q; this check reads bytes", id, u)
			}
			info := qemuImgInfo(t, byName[href])
			if info.Format != "vmdk" || info.FormatSpecific.Data.CreateType != "streamOptimized" {
				bad("Disk %s: qemu-img reads %s as %s/%s, want vmdk/streamOptimized", id, href, info.Format, info.FormatSpecific.Data.CreateType)
			}
			if capacity != fmt.Sprint(info.VirtualSize) {
				bad("Disk %s: ovf:capacity %s, qemu-img says the disk holds %d bytes", id, capacity, info.VirtualSize)
			}
		}
	}
	ns := env.one(ovfNS, "NetworkSection")
	needInfo(ns, "NetworkSection")
	networks := map[string]bool{}
	if ns != nil {
		for _, n := range ns.all(ovfNS, "Network") {
			if n.attr(ovfNS, "name") == "" {
				bad("Network without ovf:name")
			}
			networks[n.attr(ovfNS, "name")] = true
		}
	}
	vs := env.one(ovfNS, "VirtualSystem")
	needInfo(vs, "VirtualSystem")
	if vs == nil {
		return errs
	}
	if vs.attr(ovfNS, "id") == "" {
		bad("VirtualSystem without ovf:id")
	}
	needInfo(vs.one(ovfNS, "OperatingSystemSection"), "OperatingSystemSection")
	vh := vs.one(ovfNS, "VirtualHardwareSection")
	needInfo(vh, "VirtualHardwareSection")
	if vh == nil {
		return errs
	}
	items := vh.all(ovfNS, "Item")
	ids := map[string]bool{}
	for _, it := range items {
		id := it.rasd("InstanceID")
		if id == "" || it.rasd("ResourceType") == "" || it.rasd("ElementName") == "" {
			bad("Item %q lacks rasd:InstanceID, rasd:ResourceType or rasd:ElementName", id)
		}
		if ids[id] {
			bad("Item InstanceID %s twice", id)
		}
		ids[id] = true
	}
	count := map[string]int{}
	subtypes := map[string][]string{}
	for _, it := range items {
		typ := it.rasd("ResourceType")
		count[typ]++
		subtypes[typ] = append(subtypes[typ], it.rasd("ResourceSubType"))
		if p := it.rasd("Parent"); p != "" && !ids[p] {
			bad("Item %s: rasd:Parent %s names no Item", it.rasd("InstanceID"), p)
		}
		switch typ {
		case "3":
			if it.rasd("VirtualQuantity") != "2" {
				bad("%s virtual CPUs, want 2", it.rasd("VirtualQuantity"))
			}
		case "4":
			if it.rasd("VirtualQuantity") != "1024" || it.rasd("AllocationUnits") != "byte * 2^20" {
				bad("memory %s %s, want 1024 byte * 2^20", it.rasd("VirtualQuantity"), it.rasd("AllocationUnits"))
			}
		case "17":
			hr := strings.TrimPrefix(it.rasd("HostResource"), "ovf:/disk/")
			if !disks[hr] {
				bad("disk Item %s: HostResource %q names no Disk", it.rasd("InstanceID"), it.rasd("HostResource"))
			}
			if it.rasd("Parent") == "" {
				bad("disk Item %s has no controller (rasd:Parent)", it.rasd("InstanceID"))
			}
		case "10":
			if !networks[it.rasd("Connection")] {
				bad("NIC %s: rasd:Connection %q names no Network", it.rasd("InstanceID"), it.rasd("Connection"))
			}
		}
	}
	// The hardware gokrazy/kernel.amd64 drives (docs/provider/vm.md): two e1000
	// NICs, both disks on a SATA/AHCI controller, an xHCI controller.
	if count["10"] != 2 || strings.Join(subtypes["10"], ",") != "E1000,E1000" {
		bad("NICs %v, want two E1000", subtypes["10"])
	}
	if count["17"] != 2 {
		bad("%d disks, want 2 (system, ring)", count["17"])
	}
	if strings.Join(subtypes["20"], ",") != "vmware.sata.ahci" {
		bad("storage controllers %v, want one vmware.sata.ahci", subtypes["20"])
	}
	if strings.Join(subtypes["23"], ",") != "vmware.usb.xhci" {
		bad("USB controllers %v, want one vmware.usb.xhci", subtypes["23"])
	}
	for _, w := range []string{`vmw:key="firmware" vmw:value="efi"`, `vmw:key="uefi.secureBoot.enabled" vmw:value="false"`, `vmw:key="usb.generic.allowHID" vmw:value="TRUE"`} {
		if !bytes.Contains(members[0].data, []byte(w)) {
			bad("the descriptor lacks %s (UEFI without Secure Boot, a USB keyboard passed through)", w)
		}
	}

	// Manifest: one SHA-256 line per other member, each digest right.
	line := regexp.MustCompile(`^SHA256\(([^)]+)\)= ([0-9a-f]{64})$`)
	listed := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(string(members[1].data), "\n"), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			bad("manifest line %q is not SHA256(name)= hex", l)
			continue
		}
		data, ok := byName[m[1]]
		if !ok {
			bad("manifest names %s, which is not in the archive", m[1])
			continue
		}
		listed[m[1]] = true
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != m[2] {
			bad("manifest: digest of %s is %s, the member's is %x", m[1], m[2], sum)
		}
	}
	for _, m := range members[2:] {
		if !listed[m.name] {
			bad("%s is not in the manifest", m.name)
		}
	}
	if !listed[members[0].name] {
		bad("the descriptor is not in the manifest")
	}
	return errs
}

type imgInfo struct {
	Format         string `json:"format"`
	VirtualSize    int64  `json:"virtual-size"`
	FormatSpecific struct {
		Data struct {
			CreateType string `json:"create-type"`
		} `json:"data"`
	} `json:"format-specific"`
}

func qemuImgInfo(t *testing.T, data []byte) imgInfo {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.vmdk")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(testtool.Path(t, "qemu-img", "qemu-utils"), "info", "--output=json", p).Output()
	if err != nil {
		t.Fatalf("qemu-img info: %v", err)
	}
	var info imgInfo
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("qemu-img info: %v\n%s", err, out)
	}
	return info
}

// vmdk makes a raw disk of size bytes with some random data and converts
// it to a streamOptimized VMDK as make vm does.
func vmdk(t *testing.T, dir, name string, size int64) string {
	t.Helper()
	raw := filepath.Join(dir, name+".img")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, 1<<20)
	rand.Read(junk)
	if _, err := f.WriteAt(junk, size/2); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(dir, name+".vmdk")
	if o, err := exec.Command(testtool.Path(t, "qemu-img", "qemu-utils"), "convert", "-f", "raw", "-O", "vmdk",
		"-o", "subformat=streamOptimized", raw, out).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, o)
	}
	return out
}

func testOptions(t *testing.T) Options {
	dir := t.TempDir()
	return Options{Name: "presscap-x86", CPUs: 2, MemoryMiB: 1024,
		Disks:    []string{vmdk(t, dir, "system", 64<<20), vmdk(t, dir, "ring", 96<<20)},
		Networks: []string{"management", "capture"}, ModTime: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}
}

func TestOVA(t *testing.T) {
	o := testOptions(t)
	ova := filepath.Join(t.TempDir(), "presscap-x86.ova")
	if err := Write(ova, o); err != nil {
		t.Fatal(err)
	}
	for _, err := range checkOVA(t, ova) {
		t.Error(err)
	}
}

// TestCheckOVACatchesDamage: the check above fails on a damaged archive
// (a disk byte changed, so its digest is wrong) and on a descriptor whose
// sizes and references do not match the archive.
func TestCheckOVACatchesDamage(t *testing.T) {
	o := testOptions(t)
	dir := t.TempDir()
	ova := filepath.Join(dir, "good.ova")
	if err := Write(ova, o); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(ova)
	if err != nil {
		t.Fatal(err)
	}
	// The last member's data ends 1024 bytes (the end-of-archive blocks)
	// plus its padding before the end; flip a byte well inside it.
	damaged := bytes.Clone(b)
	damaged[len(damaged)-1024-4096] ^= 0xff
	p := filepath.Join(dir, "damaged.ova")
	if err := os.WriteFile(p, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	if errs := fmt.Sprint(checkOVA(t, p)); !strings.Contains(errs, "manifest: digest of presscap-x86-disk2.vmdk") {
		t.Errorf("a damaged disk passed the check: %s", errs)
	}
	// A descriptor that lies about a size and names a missing file.
	desc, err := Descriptor(o)
	if err != nil {
		t.Fatal(err)
	}
	lie := regexp.MustCompile(`ovf:size="\d+"`).ReplaceAll(desc, []byte(`ovf:size="1"`))
	lie = bytes.Replace(lie, []byte(`ovf:href="presscap-x86-disk2.vmdk"`), []byte(`ovf:href="nope.vmdk"`), 1)
	p2 := filepath.Join(dir, "lie.ova")
	writeTar(t, p2, member{"presscap-x86.ovf", lie}, member{"presscap-x86.mf", nil}, member{"presscap-x86-disk1.vmdk", mustRead(t, o.Disks[0])})
	errs := fmt.Sprint(checkOVA(t, p2))
	for _, w := range []string{`ovf:size "1"`, "nope.vmdk is not in the archive", "the descriptor is not in the manifest"} {
		if !strings.Contains(errs, w) {
			t.Errorf("check of a lying descriptor lacks %q: %s", w, errs)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeTar(t *testing.T, p string, ms ...member) {
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, m := range ms {
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Size: int64(len(m.data)), Mode: 0o644, Format: tar.FormatUSTAR}); err != nil {
			t.Fatal(err)
		}
		tw.Write(m.data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestDescriptorRefusesBadOptions(t *testing.T) {
	o := testOptions(t)
	for _, tt := range []struct {
		mod  func(*Options)
		want string
	}{
		{func(o *Options) { o.Name = "bad name" }, "name"},
		{func(o *Options) { o.CPUs = 0 }, "CPU"},
		{func(o *Options) { o.Networks = nil }, "networks"},
		{func(o *Options) { o.Disks = []string{filepath.Join(t.TempDir(), "missing.vmdk")} }, "missing.vmdk"},
		{func(o *Options) { o.Disks = []string{"ovf.go"} }, "KDMV"},
	} {
		c := o
		tt.mod(&c)
		if _, err := Descriptor(c); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Descriptor(%+v) = %v, want an error mentioning %q", c, err, tt.want)
		}
	}
}

// Package ovf writes the VM edition's OVA: an OVF 1.0 descriptor, its
// manifest (SHA-256 of every member) and the streamOptimized VMDK disks, in
// a USTAR archive in that order, as ESXi, VMware Workstation and VirtualBox
// import it.
//
// The virtual hardware is what gokrazy/kernel.amd64 drives (docs/provider/vm.md):
// e1000 NICs and a SATA/AHCI controller, because the kernel has neither
// vmxnet3 nor PVSCSI; an xHCI controller for the presenter's dongle (and
// VMware's usb.generic.allowHID, without which ESXi and Workstation keep a
// USB keyboard such as the R400's receiver from being passed through); UEFI
// firmware without Secure Boot.
package ovf

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
	"time"
)

// Options describe one appliance.
type Options struct {
	// Name is the virtual machine's name and the members' prefix.
	Name string
	// CPUs and MemoryMiB size the machine.
	CPUs, MemoryMiB int
	// Disks are streamOptimized VMDK files, the system disk first; each is
	// attached to the SATA controller in this order.
	Disks []string
	// Networks name the NICs' networks in order (the first is the
	// management NIC, eth0 in the guest).
	Networks []string
	// ModTime stamps the archive members.
	ModTime time.Time
}

// Member names inside the archive.
func (o Options) descriptorName() string { return o.Name + ".ovf" }
func (o Options) manifestName() string   { return o.Name + ".mf" }
func (o Options) diskName(i int) string  { return fmt.Sprintf("%s-disk%d.vmdk", o.Name, i+1) }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// VMDKCapacity returns the virtual size in bytes recorded in a sparse
// (monolithicSparse or streamOptimized) VMDK's header.
func VMDKCapacity(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var h [20]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return 0, fmt.Errorf("%s: reading the VMDK header: %w", path, err)
	}
	if string(h[0:4]) != "KDMV" {
		return 0, fmt.Errorf("%s: magic %q at byte 0, want \"KDMV\" (a sparse VMDK; convert with qemu-img -O vmdk -o subformat=streamOptimized)", path, h[0:4])
	}
	return int64(binary.LittleEndian.Uint64(h[12:])) * 512, nil
}

type disk struct {
	ID, FileID, Href string
	Size, Capacity   int64
	Unit             int
}

type nic struct {
	Name string
	Unit int
}

var descriptor = template.Must(template.New("ovf").Funcs(template.FuncMap{"x": xmlText, "add": func(a, b int) int { return a + b }}).Parse(`<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
{{- range .Disks}}
    <File ovf:href="{{x .Href}}" ovf:id="{{.FileID}}" ovf:size="{{.Size}}"/>
{{- end}}
  </References>
  <DiskSection>
    <Info>Virtual disks: the gokrazy system disk, then the packet ring's disk</Info>
{{- range .Disks}}
    <Disk ovf:capacity="{{.Capacity}}" ovf:capacityAllocationUnits="byte" ovf:diskId="{{.ID}}" ovf:fileRef="{{.FileID}}" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
{{- end}}
  </DiskSection>
  <NetworkSection>
    <Info>The management network (eth0) and the capture network (eth1)</Info>
{{- range .NICs}}
    <Network ovf:name="{{x .Name}}">
      <Description>{{x .Name}}</Description>
    </Network>
{{- end}}
  </NetworkSection>
  <VirtualSystem ovf:id="{{x .Name}}">
    <Info>presscap, a back-in-time packet capture probe (gokrazy, x86-64, UEFI)</Info>
    <Name>{{x .Name}}</Name>
    <OperatingSystemSection ovf:id="101" vmw:osType="otherLinux64Guest">
      <Info>The guest operating system</Info>
      <Description>gokrazy (Linux, 64-bit)</Description>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>{{.CPUs}} vCPUs, {{.MemoryMiB}} MiB, SATA (AHCI), e1000 NICs, xHCI, UEFI without Secure Boot</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{{x .Name}}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-14</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of virtual CPUs</rasd:Description>
        <rasd:ElementName>{{.CPUs}} virtual CPUs</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>{{.CPUs}}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory size</rasd:Description>
        <rasd:ElementName>{{.MemoryMiB}} MiB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>{{.MemoryMiB}}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SATA controller (AHCI)</rasd:Description>
        <rasd:ElementName>sataController0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>vmware.sata.ahci</rasd:ResourceSubType>
        <rasd:ResourceType>20</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>USB controller (xHCI), for the presenter's dongle</rasd:Description>
        <rasd:ElementName>usb3</rasd:ElementName>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:ResourceSubType>vmware.usb.xhci</rasd:ResourceSubType>
        <rasd:ResourceType>23</rasd:ResourceType>
      </Item>
{{- range $i, $d := .Disks}}
      <Item>
        <rasd:AddressOnParent>{{$d.Unit}}</rasd:AddressOnParent>
        <rasd:ElementName>disk{{$d.Unit}}</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/{{$d.ID}}</rasd:HostResource>
        <rasd:InstanceID>{{add 10 $i}}</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
{{- end}}
{{- range $i, $n := .NICs}}
      <Item>
        <rasd:AddressOnParent>{{$n.Unit}}</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>{{x $n.Name}}</rasd:Connection>
        <rasd:Description>E1000 ethernet adapter on "{{x $n.Name}}"</rasd:Description>
        <rasd:ElementName>ethernet{{$i}}</rasd:ElementName>
        <rasd:InstanceID>{{add 20 $i}}</rasd:InstanceID>
        <rasd:ResourceSubType>E1000</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
{{- end}}
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>
      <vmw:Config ovf:required="false" vmw:key="uefi.secureBoot.enabled" vmw:value="false"/>
      <vmw:ExtraConfig ovf:required="false" vmw:key="usb.generic.allowHID" vmw:value="TRUE"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`))

func xmlText(s string) (string, error) {
	var b strings.Builder
	err := xml.EscapeText(&b, []byte(s))
	return b.String(), err
}

// Descriptor returns the OVF descriptor for o.
func Descriptor(o Options) ([]byte, error) {
	if !nameRE.MatchString(o.Name) {
		return nil, fmt.Errorf("name %q: want letters, digits, '.', '_', '-' (it names the archive's members)", o.Name)
	}
	if o.CPUs < 1 || o.MemoryMiB < 64 {
		return nil, fmt.Errorf("%d CPUs, %d MiB: want at least 1 CPU and 64 MiB", o.CPUs, o.MemoryMiB)
	}
	if len(o.Disks) == 0 || len(o.Disks) > 30 {
		return nil, fmt.Errorf("%d disks: a SATA controller takes 1 to 30", len(o.Disks))
	}
	if len(o.Networks) == 0 {
		return nil, errors.New("no networks: the probe needs a management NIC")
	}
	data := struct {
		Options
		Disks []disk
		NICs  []nic
	}{Options: o}
	for i, p := range o.Disks {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		c, err := VMDKCapacity(p)
		if err != nil {
			return nil, err
		}
		data.Disks = append(data.Disks, disk{ID: fmt.Sprintf("vmdisk%d", i+1), FileID: fmt.Sprintf("file%d", i+1),
			Href: o.diskName(i), Size: st.Size(), Capacity: c, Unit: i})
	}
	for i, n := range o.Networks {
		data.NICs = append(data.NICs, nic{Name: n, Unit: 7 + i})
	}
	var b bytes.Buffer
	if err := descriptor.Execute(&b, data); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Write writes the OVA to out: descriptor, manifest, disks.
func Write(out string, o Options) error {
	desc, err := Descriptor(o)
	if err != nil {
		return err
	}
	// The manifest needs every disk's digest before the archive is written.
	var mf bytes.Buffer
	sum := sha256.Sum256(desc)
	fmt.Fprintf(&mf, "SHA256(%s)= %s\n", o.descriptorName(), hex.EncodeToString(sum[:]))
	for i, p := range o.Disks {
		d, err := fileSHA256(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&mf, "SHA256(%s)= %s\n", o.diskName(i), d)
	}
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	defer f.Close()
	tw := tar.NewWriter(f)
	add := func(name string, size int64, r io.Reader) error {
		h := &tar.Header{Name: name, Size: size, Mode: 0o644, ModTime: o.ModTime, Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if _, err := io.Copy(tw, r); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	if err := add(o.descriptorName(), int64(len(desc)), bytes.NewReader(desc)); err != nil {
		return err
	}
	if err := add(o.manifestName(), int64(mf.Len()), &mf); err != nil {
		return err
	}
	for i, p := range o.Disks {
		if err := addFile(add, o.diskName(i), p); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

func addFile(add func(string, int64, io.Reader) error, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	return add(name, st.Size(), f)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

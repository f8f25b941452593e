package capture

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pcap LINKTYPE_ values of the links we capture.
const (
	LinkTypeEthernet = 1
	LinkTypeRaw      = 101
)

// ifaceInfo is what the capture needs to know of an interface.
type ifaceInfo struct {
	index    int
	up       bool
	running  bool   // IFF_RUNNING: operationally up, with a carrier
	hwType   uint16 // ARPHRD_*
	linkType uint32 // pcap LINKTYPE_*
}

// lookupIface asks the kernel about an interface with ioctls on a socket
// of its own.
func lookupIface(name string) (ifaceInfo, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return ifaceInfo{}, fmt.Errorf("socket for interface ioctls: %w", err)
	}
	defer unix.Close(fd)
	return lookupIfaceOn(fd, name)
}

// lookupIfaceOn asks the kernel about an interface with ioctls on fd (any
// socket, the capture's own packet socket included), which is cheap enough
// to do every second per link and needs no new file descriptor.
func lookupIfaceOn(fd int, name string) (ifaceInfo, error) {
	var info ifaceInfo
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return info, fmt.Errorf("interface %q: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return info, fmt.Errorf("interface %q: %w", name, err)
	}
	info.index = int(ifr.Uint32())
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return info, fmt.Errorf("interface %q flags: %w", name, err)
	}
	info.up = ifr.Uint16()&unix.IFF_UP != 0
	info.running = ifr.Uint16()&unix.IFF_RUNNING != 0
	// SIOCGIFHWADDR fills a sockaddr whose family is the ARPHRD type.
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFHWADDR, ifr); err != nil {
		return info, fmt.Errorf("interface %q hardware type: %w", name, err)
	}
	info.hwType = ifr.Uint16()
	switch info.hwType {
	case unix.ARPHRD_ETHER, unix.ARPHRD_LOOPBACK:
		info.linkType = LinkTypeEthernet
	case unix.ARPHRD_NONE:
		// tun devices and the like carry bare IP packets.
		info.linkType = LinkTypeRaw
	default:
		return info, fmt.Errorf("interface %q: hardware type %d (ARPHRD) is not supported: only Ethernet, loopback and IP tunnels", name, info.hwType)
	}
	return info, nil
}

// shortage reports whether a failed lookup failed for lack of resources
// (EMFILE, ENFILE: out of file descriptors; ENOMEM, ENOBUFS), which says
// nothing about the interface: its socket still captures.
func shortage(err error) bool {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return false
	}
	return errno == unix.EMFILE || errno == unix.ENFILE || errno == unix.ENOMEM || errno == unix.ENOBUFS
}

// InterfaceState tells whether an interface exists and is up, with ioctls
// rather than a netlink dump of every interface (net.InterfaceByName),
// which costs a descriptor and an allocation per interface of the system.
// An error means the kernel could not be asked (the process out of file
// descriptors): it says nothing about the interface.
func InterfaceState(name string) (present, up bool, err error) {
	present, info, err := interfaceFlags(name)
	return present, info.up, err
}

// InterfaceCarrier is InterfaceState asking for more: the interface is up
// and has a carrier (IFF_RUNNING), a cable to a live device.
func InterfaceCarrier(name string) (present, carrier bool, err error) {
	present, info, err := interfaceFlags(name)
	return present, info.up && info.running, err
}

func interfaceFlags(name string) (present bool, info ifaceInfo, err error) {
	info, err = lookupIface(name)
	var errno unix.Errno
	switch {
	case err == nil:
		return true, info, nil
	case shortage(err):
		return false, ifaceInfo{}, err
	case !errors.As(err, &errno):
		return true, info, nil // there, of a hardware type we do not capture
	default:
		return false, ifaceInfo{}, nil
	}
}

// setUp brings an interface administratively up.
func setUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for interface ioctls: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("interface %q: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("interface %q flags: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring interface %q up: %w", name, err)
	}
	return nil
}

// LinkType returns the pcap LINKTYPE_ of an interface, for registering the
// link with the ring before capturing.
func LinkType(name string) (uint32, error) {
	info, err := lookupIface(name)
	if err != nil {
		return 0, err
	}
	return info.linkType, nil
}

// ethtoolValue is struct ethtool_value.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqPtr is struct ifreq with a pointer in its union, as SIOCETHTOOL
// expects.
type ifreqPtr struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(unsafe.Pointer(nil))]byte
}

func ethtool(fd int, name string, v *ethtoolValue) error {
	var ifr ifreqPtr
	copy(ifr.name[:], name)
	ifr.data = unsafe.Pointer(v)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		return errno
	}
	return nil
}

// disableGRO turns generic receive offload off: with it the kernel merges
// the TCP segments of a burst into one large packet before the capture sees
// it, and the ring would hold frames the wire never carried (tcpdump shows
// them too). It reports whether it changed anything.
func disableGRO(name string) (bool, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("socket for interface ioctls: %w", err)
	}
	defer unix.Close(fd)
	v := ethtoolValue{cmd: unix.ETHTOOL_GGRO}
	if err := ethtool(fd, name, &v); err != nil {
		return false, fmt.Errorf("interface %q: read GRO setting: %w", name, err)
	}
	if v.data == 0 {
		return false, nil
	}
	v = ethtoolValue{cmd: unix.ETHTOOL_SGRO, data: 0}
	if err := ethtool(fd, name, &v); err != nil {
		return false, fmt.Errorf("interface %q: turn GRO off: %w", name, err)
	}
	return true, nil
}

//go:build linux

package netpoll

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The peer's address of an accepted connection comes with accept4: the loop
// passes its own sockaddr buffer (Loop.peer), valid until the next accept,
// so Handler.Open can learn whom it serves without a getpeername(2) per
// connection (about 2 % of the server's CPU in a connection storm,
// docs/benchmarks.md "Handshakes against nbio").

// AcceptedPeer returns the IP address accept4 reported for c, and true, when
// called from Handler.Open of the connection being opened; otherwise the
// zero Addr and false (ask getpeername then). Loop goroutine only.
func (c *Conn) AcceptedPeer() (netip.Addr, bool) {
	l := c.loop
	if l.opening != c {
		return netip.Addr{}, false
	}
	return SockaddrAddrPort(&l.peer).Addr(), true
}

// SockaddrAddrPort is the address and port of an AF_INET or AF_INET6 socket
// address (IPv4-mapped IPv6 addresses unmapped), the zero AddrPort for
// anything else.
func SockaddrAddrPort(rsa *unix.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), networkPort(sa.Port))
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), networkPort(sa.Port))
	}
	return netip.AddrPort{}
}

// networkPort reads a sockaddr's port, which is in network byte order.
func networkPort(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return binary.BigEndian.Uint16(b[:])
}

//go:build linux

package netpoll

import (
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
	return SockaddrIP(&l.peer), true
}

// SockaddrIP is the IP address of an AF_INET or AF_INET6 socket address
// (IPv4-mapped IPv6 addresses unmapped), the zero Addr for anything else.
func SockaddrIP(rsa *unix.RawSockaddrAny) netip.Addr {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		return netip.AddrFrom4((*unix.RawSockaddrInet4)(unsafe.Pointer(rsa)).Addr)
	case unix.AF_INET6:
		return netip.AddrFrom16((*unix.RawSockaddrInet6)(unsafe.Pointer(rsa)).Addr).Unmap()
	}
	return netip.Addr{}
}

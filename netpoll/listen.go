//go:build linux

package netpoll

import (
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// listenReusePort opens a non-blocking listening TCP socket on addr with
// SO_REUSEPORT set, so that every loop can own a listener on the same port and
// the kernel spreads incoming connections over them. A nil or unspecified IP
// listens on all IPv4 and IPv6 addresses, as net.Listen does. The listener
// carries the options its connections inherit (setAcceptedOptions).
func listenReusePort(addr *net.TCPAddr, backlog, sndbuf int) (int, error) {
	lfd, err := bindSocket(addr, backlog, true)
	if err != nil {
		return -1, err
	}
	if err := setAcceptedOptions(lfd, sndbuf); err != nil {
		unix.Close(lfd)
		return -1, err
	}
	return lfd, nil
}

// setAcceptedOptions sets on the listener the options every connection
// needs, TCP_NODELAY and (sndbuf > 0) SO_SNDBUF: Linux clones an accepted
// socket from its listener, options included, so they cost one setsockopt
// per listener instead of one or two per connection (TCP_NODELAY alone was
// about 2.5 % of the server's CPU in a connection storm, docs/benchmarks.md
// "Handshakes against nbio"). TestAcceptedSocketsInheritOptions checks the
// kernel does so. It also sets the listener's own TCP_DEFER_ACCEPT
// (deferAcceptSeconds), which decides when a connection is accepted at all.
func setAcceptedOptions(lfd, sndbuf int) error {
	if err := unix.SetsockoptInt(lfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return fmt.Errorf("listener TCP_NODELAY: %w", err)
	}
	if err := unix.SetsockoptInt(lfd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, deferAcceptSeconds); err != nil {
		return fmt.Errorf("listener TCP_DEFER_ACCEPT: %w", err)
	}
	if sndbuf > 0 {
		if err := unix.SetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_SNDBUF, sndbuf); err != nil {
			return fmt.Errorf("listener SO_SNDBUF: %w", err)
		}
	}
	return nil
}

// deferAcceptSeconds is the listeners' TCP_DEFER_ACCEPT: the kernel puts a
// connection in the accept queue once its first bytes have arrived (every
// client speaks first: the HTTP request, a TLS ClientHello, a PROXY
// header), so a loop wakes once to accept and read it, not once to accept
// it and again when its request arrives. In a connection storm that is
// 10-12 % more handshakes a second at 0.87-0.92x the CPU
// (docs/benchmarks.md, "Handshakes against nbio"). A client that connects
// and sends nothing is accepted anyway once this passes (the kernel's next
// SYN-ACK retransmission after it), and then meets -handshake-timeout.
const deferAcceptSeconds = 1

// checkPortFree fails with an error wrapping EADDRINUSE ("address already in
// use") when another socket holds addr's port: SO_REUSEPORT alone would let a
// second wspush (same user) bind beside the first and take a share of its
// connections. It binds, without SO_REUSEPORT, a socket it closes at once: a
// bound socket without SO_REUSEPORT conflicts with every listener on the
// port, SO_REUSEPORT or not, so it succeeds only when the port is free. Port 0
// (the kernel picks a free one) needs no check. Two processes starting at the
// same instant could both pass it before either binds: Listen runs it and the
// loops' binds under lockPort, so the second one's check sees the first's
// listeners.
func checkPortFree(addr *net.TCPAddr) error {
	if addr.Port == 0 {
		return nil
	}
	fd, err := bindSocket(addr, 0, false)
	if err != nil {
		return err
	}
	unix.Close(fd)
	return nil
}

// lockPort takes the port's start-up lock: an abstract unix socket named after
// the port, which only one socket can bind. Abstract names live in the network
// namespace, as TCP ports do, need no file, and are released by the kernel
// when the holder exits, however it exits. The lock is per port, not per
// address, because a wildcard and a specific address on one port conflict; it
// is held only while the port is checked and bound (milliseconds), so
// processes on other addresses of the same port merely wait their turn. It
// waits up to portLockWait for a holder to finish, then fails with
// EADDRINUSE: something else is starting on that port. Port 0 takes no lock.
func lockPort(port int) (release func(), err error) {
	if port == 0 {
		return func() {}, nil
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("port lock: socket: %w", err)
	}
	name := &unix.SockaddrUnix{Name: fmt.Sprintf("@%s%d", portLockPrefix, port)} // '@': the abstract namespace
	for deadline := time.Now().Add(portLockWait); ; {
		err = unix.Bind(fd, name)
		if err == nil {
			return func() { unix.Close(fd) }, nil
		}
		if err != unix.EADDRINUSE || time.Now().After(deadline) {
			unix.Close(fd)
			return nil, fmt.Errorf("port lock %s for port %d (another process is starting on it): %w", name.Name, port, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// portLockPrefix names the abstract unix sockets of lockPort.
const portLockPrefix = "wspush/listen-port/"

// portLockWait is how long lockPort waits for another process's start-up on
// the same port: far longer than a start-up holds it.
const portLockWait = 5 * time.Second

// bindSocket opens a non-blocking TCP socket bound to addr, with SO_REUSEPORT
// when reusePort is set, and listening when backlog > 0.
func bindSocket(addr *net.TCPAddr, backlog int, reusePort bool) (int, error) {
	family, sa := sockaddr(addr)
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil && family == unix.AF_INET6 && addr.IP == nil {
		// No IPv6 on this host: fall back to IPv4 only.
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: addr.Port}
		fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	}
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	fail := func(what string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("%s %s: %w", what, addr, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	if reusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fail("SO_REUSEPORT", err)
		}
	}
	if family == unix.AF_INET6 && (addr.IP == nil || addr.IP.IsUnspecified()) {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return fail("IPV6_V6ONLY", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	if backlog <= 0 {
		return fd, nil
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return fail("listen", err)
	}
	return fd, nil
}

func sockaddr(addr *net.TCPAddr) (int, unix.Sockaddr) {
	if ip4 := addr.IP.To4(); ip4 != nil {
		sa := &unix.SockaddrInet4{Port: addr.Port}
		copy(sa.Addr[:], ip4)
		return unix.AF_INET, sa
	}
	sa := &unix.SockaddrInet6{Port: addr.Port}
	copy(sa.Addr[:], addr.IP.To16())
	return unix.AF_INET6, sa
}

// boundAddr reports the address a listening socket is bound to.
func boundAddr(fd int) (*net.TCPAddr, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}, nil
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}, nil
	}
	return nil, fmt.Errorf("getsockname: unexpected address %T", sa)
}

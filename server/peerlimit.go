package server

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/wspush/wspush/netpoll"
)

// peerAddr is the address a connection counts against for
// -max-conns-per-ip: today the TCP peer's IP. It is the one place that
// decides it, so a PROXY protocol header (a trusted proxy speaking for the
// client) changes it here alone. The zero Addr means unknown (the socket is
// already gone), which is not counted. With the PROXY protocol the address
// is known only once the header is parsed: the connection is then counted
// under the header's client (readProxy, proxy.go), never under the proxy's.
// While Handler.Open runs it is the address accept4 returned, which saves a
// getpeername(2) per connection.
func peerAddr(c *netpoll.Conn) netip.Addr {
	if a, ok := c.AcceptedPeer(); ok {
		return a
	}
	return socketPeer(c.Fd()).Addr()
}

// socketPeer is getpeername(2) of fd, the zero AddrPort if the socket has
// no peer any more, without an allocation: unix.Getpeername puts its
// sockaddr buffer and the Sockaddr it returns on the heap, about 140 bytes
// of garbage per connection, which a connection storm leaves resident
// until the runtime returns it (docs/benchmarks.md, idle memory).
func socketPeer(fd int) netip.AddrPort {
	var rsa unix.RawSockaddrAny
	n := uint32(unix.SizeofSockaddrAny)
	_, _, errno := unix.RawSyscall(unix.SYS_GETPEERNAME, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)))
	if errno != 0 {
		return netip.AddrPort{}
	}
	return netpoll.SockaddrAddrPort(&rsa)
}

// peerIP is the address a connection is counted under: an IPv6 address, or
// an IPv4 one in its IPv4-mapped form; all zeros (the unspecified address,
// never a TCP peer) means unknown, which is not counted. It is 16 bytes where
// a netip.Addr is 24: every session holds one until it closes
// (TestSessionSizeClass), and the table's keys are these too. An IPv6 zone
// is not kept: a peer is counted by its address.
type peerIP [16]byte

// toPeerIP is a's counting key; the zero Addr gives the unknown key.
func toPeerIP(a netip.Addr) peerIP {
	if !a.IsValid() {
		return peerIP{}
	}
	return a.Unmap().As16()
}

// addr is the address p stands for (IPv4 unmapped), for logs and tests.
func (p peerIP) addr() netip.Addr {
	if p == (peerIP{}) {
		return netip.Addr{}
	}
	return netip.AddrFrom16(p).Unmap()
}

// peerTable counts the open TCP connections of each peer address, over all
// loops: a client's connections land on any loop (SO_REUSEPORT hashes the
// 4-tuple). It has one entry per address with at least one connection,
// removed with its last one, so it is bounded by the open connections. It is
// touched once at accept and once at close, never per message; shards keep
// the loops from contending on one lock during a connection storm.
type peerTable struct {
	limit  int
	seed   maphash.Seed
	shards [peerShards]peerShard
}

const peerShards = 64

type peerShard struct {
	mu sync.Mutex
	n  map[peerIP]int32
	_  [40]byte // a shard per cache line: loops accepting at once do not share one
}

func newPeerTable(limit int) *peerTable {
	p := &peerTable{limit: limit, seed: maphash.MakeSeed()}
	for i := range p.shards {
		p.shards[i].n = make(map[peerIP]int32)
	}
	return p
}

func (p *peerTable) shard(a peerIP) *peerShard {
	return &p.shards[maphash.Bytes(p.seed, a[:])%peerShards]
}

// add counts one more connection of a and reports whether it is within the
// limit. A connection over the limit is counted too (until remove): it is
// still an open descriptor.
func (p *peerTable) add(a peerIP) bool {
	if a == (peerIP{}) {
		return true
	}
	sh := p.shard(a)
	sh.mu.Lock()
	n := sh.n[a] + 1
	sh.n[a] = n
	sh.mu.Unlock()
	return int(n) <= p.limit
}

// remove forgets one connection of a.
func (p *peerTable) remove(a peerIP) {
	if a == (peerIP{}) {
		return
	}
	sh := p.shard(a)
	sh.mu.Lock()
	if n := sh.n[a] - 1; n > 0 {
		sh.n[a] = n
	} else {
		delete(sh.n, a)
	}
	sh.mu.Unlock()
}

// addresses is the number of peer addresses with a connection open.
func (p *peerTable) addresses() int {
	n := 0
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		n += len(sh.n)
		sh.mu.Unlock()
	}
	return n
}

// msgTooManyFromIP is the body of the 429 past -max-conns-per-ip.
const msgTooManyFromIP = "too many connections from your address"

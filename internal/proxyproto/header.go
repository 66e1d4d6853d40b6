package proxyproto

import (
	"errors"
	"net/netip"
)

// Command says what a Header tells about the connection.
type Command uint8

const (
	// Proxy: the connection is relayed for a client, whose address is
	// Header.Source.
	Proxy Command = iota + 1
	// Local: the proxy opened the connection itself (a health check, v2 only);
	// the socket's own addresses are the real ones.
	Local
	// Unknown: the connection is relayed but the proxy gives no IP addresses
	// (v1 "UNKNOWN", v2 AF_UNSPEC or AF_UNIX); use the socket's addresses.
	Unknown
)

// String names the command for logs.
func (c Command) String() string {
	switch c {
	case Proxy:
		return "PROXY"
	case Local:
		return "LOCAL"
	case Unknown:
		return "UNKNOWN"
	}
	return "invalid"
}

// Header is a parsed PROXY protocol header. It holds no reference to the
// bytes it was parsed from.
type Header struct {
	// Version is 1 (text) or 2 (binary).
	Version uint8
	Command Command
	// Source and Destination are the client's address and the address it
	// connected to; valid only when Command is Proxy.
	Source, Destination netip.AddrPort
	// Len is the header's length in bytes, TLVs included: the HTTP request
	// starts at this offset.
	Len int
}

// Client returns the address to treat as the client's: Source when the
// header carries one, else peer, the socket's remote address.
func (h Header) Client(peer netip.AddrPort) netip.AddrPort {
	if h.Command == Proxy {
		return h.Source
	}
	return peer
}

// Limits of the protocol and of this parser.
const (
	// MaxV1Len is the longest v1 header the specification allows, CRLF
	// included ("PROXY UNKNOWN" followed by the longest TCP6 line).
	MaxV1Len = 107
	// DefaultMaxV2Payload is the largest v2 payload (addresses and TLVs,
	// after the 16 fixed bytes) a zero Parser accepts. The specification
	// allows 65,535; real senders stay far below: addresses take at most
	// 216 bytes (AF_UNIX), and HAProxy's SSL TLVs or an AWS NLB's VPC
	// endpoint TLV add a few hundred.
	DefaultMaxV2Payload = 2048
)

// Errors Parse returns. Errors other than ErrIncomplete mean the connection
// must be closed; they may wrap one of these with detail, so match them
// with errors.Is.
var (
	// ErrIncomplete: the bytes so far are a valid beginning of a header;
	// call Parse again when more have arrived.
	ErrIncomplete = errors.New("proxyproto: incomplete header")
	// ErrNoHeader: the connection does not start with a PROXY header
	// signature (a client that bypassed the proxy, or a proxy not set up to
	// send one).
	ErrNoHeader = errors.New("proxyproto: no PROXY protocol header")
	// ErrTooLong: a v1 line without CRLF in MaxV1Len bytes, or a v2 length
	// over the Parser's limit.
	ErrTooLong = errors.New("proxyproto: header too long")
	// ErrVersion: a v2 signature with a version other than 2.
	ErrVersion = errors.New("proxyproto: unsupported version")
	// ErrCommand: a v2 command other than LOCAL or PROXY.
	ErrCommand = errors.New("proxyproto: unsupported command")
	// ErrFamily: an address family or transport other than TCP over IPv4 or
	// IPv6, UNKNOWN/AF_UNSPEC or a Unix stream socket.
	ErrFamily = errors.New("proxyproto: unsupported address family")
	// ErrMalformed: a field that does not parse (address, port, separators,
	// line ending, address block shorter than its family needs).
	ErrMalformed = errors.New("proxyproto: malformed header")
)

// Parser parses PROXY headers within configurable bounds. The zero value
// is ready to use.
type Parser struct {
	// MaxV2Payload bounds the v2 length field; 0 means DefaultMaxV2Payload.
	// A header announcing more is refused with ErrTooLong before its
	// payload is waited for, so a peer cannot make the caller buffer more.
	MaxV2Payload int
}

// Parse parses the header at the start of b with a zero Parser.
func Parse(b []byte) (Header, error) {
	return Parser{}.Parse(b)
}

// Parse parses the PROXY header (v1 or v2) at the start of b, the bytes
// received so far. It returns ErrIncomplete while b is a valid prefix of a
// header, and fails as soon as b cannot begin one, so a peer that sends
// garbage is refused after its first bytes. Parse never returns
// ErrIncomplete for a b of more than MaxV1Len or 16+MaxV2Payload bytes.
func (p Parser) Parse(b []byte) (Header, error) {
	if len(b) == 0 {
		return Header{}, ErrIncomplete
	}
	switch b[0] {
	case v1Prefix[0]:
		return parseV1(b)
	case v2Signature[0]:
		return p.parseV2(b)
	}
	return Header{}, ErrNoHeader
}

// startsLike reports whether b and sig agree over their common length, and
// whether b holds all of sig.
func startsLike(b []byte, sig string) (match, whole bool) {
	n := min(len(b), len(sig))
	return string(b[:n]) == sig[:n], n == len(sig)
}

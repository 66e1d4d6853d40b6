package proxyproto

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// The v2 header: a 12-byte signature, version and command, family and
// transport, a big-endian payload length, then the payload: the address
// block of the family followed by TLVs (skipped here).
const (
	v2Signature = "\r\n\r\n\x00\r\nQUIT\n"
	v2FixedLen  = 16

	v2Version      = 0x2
	v2CommandLocal = 0x0
	v2CommandProxy = 0x1

	// Family (high nibble) and transport (low nibble) values the
	// specification defines; receivers should drop anything else.
	v2Unspec     = 0x00
	v2TCP4       = 0x11
	v2UDP4       = 0x12
	v2TCP6       = 0x21
	v2UDP6       = 0x22
	v2UnixStream = 0x31
	v2UnixDgram  = 0x32

	// Address block lengths: two addresses and two ports.
	v2Inet4Len = 4 + 4 + 2 + 2
	v2Inet6Len = 16 + 16 + 2 + 2
)

func (p Parser) parseV2(b []byte) (Header, error) {
	match, whole := startsLike(b, v2Signature)
	if !match {
		return Header{}, ErrNoHeader
	}
	if !whole || len(b) < v2FixedLen {
		return Header{}, ErrIncomplete
	}
	if v := b[12] >> 4; v != v2Version {
		return Header{}, fmt.Errorf("%w: v2 signature with version %d", ErrVersion, v)
	}
	payload := int(binary.BigEndian.Uint16(b[14:16]))
	maxPayload := p.MaxV2Payload
	if maxPayload <= 0 {
		maxPayload = DefaultMaxV2Payload
	}
	if payload > maxPayload {
		return Header{}, fmt.Errorf("%w: v2 payload of %d bytes, limit %d", ErrTooLong, payload, maxPayload)
	}
	h := Header{Version: 2, Len: v2FixedLen + payload}

	// Everything checkable from the fixed part is checked before waiting
	// for the payload, so a bad header is refused at once.
	var need int
	switch cmd := b[12] & 0x0f; cmd {
	case v2CommandLocal:
		// The family and the payload are to be ignored.
		h.Command = Local
	case v2CommandProxy:
		switch b[13] {
		case v2TCP4:
			h.Command, need = Proxy, v2Inet4Len
		case v2TCP6:
			h.Command, need = Proxy, v2Inet6Len
		case v2Unspec, v2UnixStream:
			h.Command = Unknown
		case v2UDP4, v2UDP6, v2UnixDgram:
			return Header{}, fmt.Errorf("%w: v2 datagram transport 0x%02x on a stream connection", ErrFamily, b[13])
		default:
			return Header{}, fmt.Errorf("%w: v2 family and transport 0x%02x", ErrFamily, b[13])
		}
	default:
		return Header{}, fmt.Errorf("%w: v2 command %d", ErrCommand, cmd)
	}
	if payload < need {
		return Header{}, fmt.Errorf("%w: v2 payload of %d bytes, its family needs %d", ErrMalformed, payload, need)
	}
	if len(b) < h.Len {
		return Header{}, ErrIncomplete
	}
	if h.Command != Proxy {
		return h, nil
	}

	a := b[v2FixedLen:]
	if need == v2Inet4Len {
		src := netip.AddrFrom4([4]byte(a[0:4]))
		dst := netip.AddrFrom4([4]byte(a[4:8]))
		h.Source = netip.AddrPortFrom(src, binary.BigEndian.Uint16(a[8:10]))
		h.Destination = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(a[10:12]))
		return h, nil
	}
	src := netip.AddrFrom16([16]byte(a[0:16]))
	dst := netip.AddrFrom16([16]byte(a[16:32]))
	h.Source = netip.AddrPortFrom(src, binary.BigEndian.Uint16(a[32:34]))
	h.Destination = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(a[34:36]))
	return h, nil
}

package proxyproto

import (
	"bytes"
	"fmt"
	"net/netip"
)

// The v1 header is one text line:
//
//	PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n
//	PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n
//	PROXY UNKNOWN[ anything]\r\n
//
// with single spaces between fields.
const (
	v1Prefix  = "PROXY "
	v1TCP4    = "TCP4"
	v1TCP6    = "TCP6"
	v1Unknown = "UNKNOWN"
)

func parseV1(b []byte) (Header, error) {
	match, whole := startsLike(b, v1Prefix)
	if !match {
		return Header{}, ErrNoHeader
	}
	if !whole {
		return Header{}, ErrIncomplete
	}
	end := bytes.IndexByte(b[:min(len(b), MaxV1Len)], '\n')
	if end < 0 {
		if len(b) >= MaxV1Len {
			return Header{}, fmt.Errorf("%w: v1 line without LF in %d bytes", ErrTooLong, MaxV1Len)
		}
		return Header{}, ErrIncomplete
	}
	if b[end-1] != '\r' {
		return Header{}, fmt.Errorf("%w: v1 line not ended by CRLF", ErrMalformed)
	}
	h := Header{Version: 1, Len: end + 1}
	line := b[len(v1Prefix) : end-1]

	proto, rest, _ := bytes.Cut(line, []byte{' '})
	var want6 bool
	switch string(proto) {
	case v1Unknown:
		// The rest of the line is to be ignored, whatever it holds.
		h.Command = Unknown
		return h, nil
	case v1TCP4:
	case v1TCP6:
		want6 = true
	default:
		return Header{}, fmt.Errorf("%w: v1 protocol %.8q", ErrFamily, proto)
	}

	var fields [4][]byte
	for i := range fields {
		var ok bool
		fields[i], rest, ok = bytes.Cut(rest, []byte{' '})
		if ok != (i < len(fields)-1) {
			return Header{}, fmt.Errorf("%w: v1 line needs 4 fields after %s", ErrMalformed, proto)
		}
	}
	src, ok1 := parseV1Addr(fields[0], want6)
	dst, ok2 := parseV1Addr(fields[1], want6)
	if !ok1 || !ok2 {
		return Header{}, fmt.Errorf("%w: v1 address is not %s", ErrMalformed, proto)
	}
	sport, ok1 := parsePort(fields[2])
	dport, ok2 := parsePort(fields[3])
	if !ok1 || !ok2 {
		return Header{}, fmt.Errorf("%w: v1 port is not a decimal in 0-65535", ErrMalformed)
	}
	h.Command = Proxy
	h.Source = netip.AddrPortFrom(src, sport)
	h.Destination = netip.AddrPortFrom(dst, dport)
	return h, nil
}

// parseV1Addr parses an IPv4 (want6 false) or IPv6 address, without zone.
func parseV1Addr(b []byte, want6 bool) (netip.Addr, bool) {
	if !want6 {
		return parseIPv4(b)
	}
	// v1 IPv6 headers are rare (HAProxy's default is v2, nginx sends v1 for
	// IPv6 clients): this conversion allocates, and is the only one here.
	a, err := netip.ParseAddr(string(b))
	if err != nil || !a.Is6() || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a, true
}

// parseIPv4 parses a dotted quad without allocating: four decimals 0-255,
// no leading zeros (as netip.ParseAddr, which refuses them as ambiguous).
func parseIPv4(b []byte) (netip.Addr, bool) {
	var out [4]byte
	for i := range out {
		field := b
		if i < len(out)-1 {
			var ok bool
			field, b, ok = bytes.Cut(b, []byte{'.'})
			if !ok {
				return netip.Addr{}, false
			}
		}
		n, ok := parseDecimal(field, 3, 255)
		if !ok {
			return netip.Addr{}, false
		}
		out[i] = byte(n)
	}
	return netip.AddrFrom4(out), true
}

func parsePort(b []byte) (uint16, bool) {
	n, ok := parseDecimal(b, 5, 65535)
	return uint16(n), ok
}

// parseDecimal parses 1 to maxDigits decimal digits without a leading zero,
// of value at most maxValue.
func parseDecimal(b []byte, maxDigits, maxValue int) (int, bool) {
	if len(b) == 0 || len(b) > maxDigits || (len(b) > 1 && b[0] == '0') {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n <= maxValue
}

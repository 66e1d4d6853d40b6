package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// v2 builds a v2 header with the given version/command and family bytes and
// payload; length overrides the length field when >= 0.
func v2(verCmd, fam byte, payload []byte, length int) []byte {
	b := []byte(v2Signature)
	b = append(b, verCmd, fam)
	if length < 0 {
		length = len(payload)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(length))
	return append(b, payload...)
}

func inet4Block(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	b := append(s[:], d[:]...)
	b = binary.BigEndian.AppendUint16(b, sport)
	return binary.BigEndian.AppendUint16(b, dport)
}

func inet6Block(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	b := append(s[:], d[:]...)
	b = binary.BigEndian.AppendUint16(b, sport)
	return binary.BigEndian.AppendUint16(b, dport)
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// tlvs is an AWS-style TLV (type 0xEA, VPC endpoint) and a NOOP, which the
// parser must skip.
var tlvs = []byte{0xEA, 0x00, 0x05, 0x01, 'v', 'p', 'c', 'e', 0x04, 0x00, 0x02, 0, 0}

var maxV1 = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"

func TestParseValid(t *testing.T) {
	unixBlock := make([]byte, 216)
	tests := []struct {
		name string
		in   []byte
		want Header
	}{
		{"v1 TCP4", []byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"),
			Header{Version: 1, Command: Proxy, Source: ap("192.0.2.1:56324"), Destination: ap("198.51.100.2:443"), Len: 45}},
		{"v1 TCP4 extremes", []byte("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"),
			Header{Version: 1, Command: Proxy, Source: ap("0.0.0.0:0"), Destination: ap("255.255.255.255:65535"), Len: 44}},
		{"v1 TCP6", []byte("PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 1 2\r\n"),
			Header{Version: 1, Command: Proxy, Source: ap("[2001:db8::1]:1"), Destination: ap("[::ffff:10.0.0.1]:2"), Len: 44}},
		{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n"), Header{Version: 1, Command: Unknown, Len: 15}},
		{"v1 UNKNOWN with ignored rest", []byte("PROXY UNKNOWN whatever goes here\r\n"), Header{Version: 1, Command: Unknown, Len: 34}},
		{"v1 longest line", []byte(maxV1), Header{Version: 1, Command: Unknown, Len: MaxV1Len}},
		{"v2 TCP4", v2(0x21, v2TCP4, inet4Block("192.0.2.1", "198.51.100.2", 56324, 443), -1),
			Header{Version: 2, Command: Proxy, Source: ap("192.0.2.1:56324"), Destination: ap("198.51.100.2:443"), Len: 28}},
		{"v2 TCP6", v2(0x21, v2TCP6, inet6Block("2001:db8::1", "2001:db8::2", 1, 65535), -1),
			Header{Version: 2, Command: Proxy, Source: ap("[2001:db8::1]:1"), Destination: ap("[2001:db8::2]:65535"), Len: 52}},
		{"v2 TCP4 with TLVs", v2(0x21, v2TCP4, append(inet4Block("10.1.2.3", "10.0.0.1", 40000, 80), tlvs...), -1),
			Header{Version: 2, Command: Proxy, Source: ap("10.1.2.3:40000"), Destination: ap("10.0.0.1:80"), Len: 28 + len(tlvs)}},
		{"v2 LOCAL empty", v2(0x20, v2Unspec, nil, -1), Header{Version: 2, Command: Local, Len: 16}},
		{"v2 LOCAL ignores family and payload", v2(0x20, 0xff, []byte{1, 2, 3}, -1), Header{Version: 2, Command: Local, Len: 19}},
		{"v2 PROXY UNSPEC", v2(0x21, v2Unspec, nil, -1), Header{Version: 2, Command: Unknown, Len: 16}},
		{"v2 PROXY unix stream", v2(0x21, v2UnixStream, unixBlock, -1), Header{Version: 2, Command: Unknown, Len: 16 + 216}},
		{"v2 payload at the limit", v2(0x21, v2TCP4, append(inet4Block("1.2.3.4", "5.6.7.8", 1, 2), make([]byte, DefaultMaxV2Payload-12)...), -1),
			Header{Version: 2, Command: Proxy, Source: ap("1.2.3.4:1"), Destination: ap("5.6.7.8:2"), Len: 16 + DefaultMaxV2Payload}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The request that follows the header must not change the result.
			in := append(bytes.Clone(tt.in), "GET /ws HTTP/1.1\r\n"...)
			got, err := Parse(in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got != tt.want {
				t.Fatalf("Parse = %+v\nwant    %+v", got, tt.want)
			}
			if string(in[got.Len:]) != "GET /ws HTTP/1.1\r\n" {
				t.Fatalf("Len %d does not end the header", got.Len)
			}
			// Every strict prefix is a header still arriving.
			for i := range len(tt.in) {
				if _, err := Parse(tt.in[:i]); err != ErrIncomplete {
					t.Fatalf("Parse(first %d bytes) = %v, want ErrIncomplete", i, err)
				}
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	long := "PROXY TCP4 " + strings.Repeat("1", MaxV1Len)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		// Signatures.
		{"HTTP request", []byte("GET / HTTP/1.1\r\n"), ErrNoHeader},
		{"TLS ClientHello", []byte{0x16, 0x03, 0x01, 0x02, 0x00}, ErrNoHeader},
		{"v1 lower case", []byte("proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n"), ErrNoHeader},
		{"v1 bad signature", []byte("PROXZ"), ErrNoHeader},
		{"v1 no space", []byte("PROXYTCP4"), ErrNoHeader},
		{"v2 bad signature", []byte("\r\n\r\n\x00\r\nQUIX\n"), ErrNoHeader},
		{"v2 signature cut by CRLF CRLF", []byte("\r\n\r\nGET"), ErrNoHeader},
		// Lengths.
		{"v1 too long", []byte(long), ErrTooLong},
		{"v1 LF past the limit", []byte(maxV1[:len(maxV1)-2] + "0\r\n"), ErrTooLong},
		{"v2 length over the limit", v2(0x21, v2TCP4, nil, DefaultMaxV2Payload+1), ErrTooLong},
		{"v2 absurd length", v2(0x21, v2TCP4, nil, 0xffff), ErrTooLong},
		// v1 framing.
		{"v1 bare LF", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), ErrMalformed},
		{"v1 empty", []byte("PROXY \r\n"), ErrFamily},
		{"v1 UDP4", []byte("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"), ErrFamily},
		{"v1 TCP5", []byte("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), ErrFamily},
		{"v1 missing port", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), ErrMalformed},
		{"v1 extra field", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), ErrMalformed},
		{"v1 double space", []byte("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"), ErrMalformed},
		{"v1 trailing space", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), ErrMalformed},
		{"v1 tab separator", []byte("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n"), ErrMalformed},
		// v1 addresses.
		{"v1 IPv4 octet 256", []byte("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"), ErrMalformed},
		{"v1 IPv4 three octets", []byte("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"), ErrMalformed},
		{"v1 IPv4 five octets", []byte("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n"), ErrMalformed},
		{"v1 IPv4 leading zero", []byte("PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n"), ErrMalformed},
		{"v1 IPv4 empty octet", []byte("PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n"), ErrMalformed},
		{"v1 IPv4 sign", []byte("PROXY TCP4 +1.2.3.4 5.6.7.8 1 2\r\n"), ErrMalformed},
		{"v1 IPv6 under TCP4", []byte("PROXY TCP4 ::1 5.6.7.8 1 2\r\n"), ErrMalformed},
		{"v1 IPv4 under TCP6", []byte("PROXY TCP6 1.2.3.4 ::1 1 2\r\n"), ErrMalformed},
		{"v1 IPv6 zone", []byte("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), ErrMalformed},
		{"v1 IPv6 garbage", []byte("PROXY TCP6 2001:db8:::1 ::1 1 2\r\n"), ErrMalformed},
		{"v1 hostname", []byte("PROXY TCP4 localhost 5.6.7.8 1 2\r\n"), ErrMalformed},
		// v1 ports.
		{"v1 port 65536", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), ErrMalformed},
		{"v1 port six digits", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 000002\r\n"), ErrMalformed},
		{"v1 port leading zero", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"), ErrMalformed},
		{"v1 port negative", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n"), ErrMalformed},
		{"v1 port hex", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 0x1 2\r\n"), ErrMalformed},
		{"v1 port empty", []byte("PROXY TCP4 1.2.3.4 5.6.7.8  2\r\n"), ErrMalformed},
		{"v1 CR inside", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1\r2\r\n"), ErrMalformed},
		// v2 fixed part.
		{"v2 version 1", v2(0x11, v2TCP4, inet4Block("1.2.3.4", "5.6.7.8", 1, 2), -1), ErrVersion},
		{"v2 version 3", v2(0x31, v2TCP4, nil, 0), ErrVersion},
		{"v2 version 0", v2(0x01, v2TCP4, nil, 0), ErrVersion},
		{"v2 command 2", v2(0x22, v2TCP4, inet4Block("1.2.3.4", "5.6.7.8", 1, 2), -1), ErrCommand},
		{"v2 command 15", v2(0x2f, v2TCP4, nil, 0), ErrCommand},
		{"v2 family 4", v2(0x21, 0x41, nil, 0), ErrFamily},
		{"v2 transport 3", v2(0x21, 0x13, nil, 0), ErrFamily},
		{"v2 family with unspec transport", v2(0x21, 0x10, nil, 0), ErrFamily},
		{"v2 UDP4", v2(0x21, v2UDP4, inet4Block("1.2.3.4", "5.6.7.8", 1, 2), -1), ErrFamily},
		{"v2 UDP6", v2(0x21, v2UDP6, nil, 36), ErrFamily},
		{"v2 unix dgram", v2(0x21, v2UnixDgram, nil, 216), ErrFamily},
		// v2 address block shorter than the family, refused before waiting.
		{"v2 TCP4 short block", v2(0x21, v2TCP4, nil, 11), ErrMalformed},
		{"v2 TCP6 block of TCP4 size", v2(0x21, v2TCP6, inet4Block("1.2.3.4", "5.6.7.8", 1, 2), -1), ErrMalformed},
		{"v2 TCP4 zero length", v2(0x21, v2TCP4, nil, 0), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse(%q) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

// TestParseIncompleteIsBounded checks that a peer cannot keep the caller
// buffering: past the largest header the answer is never ErrIncomplete.
func TestParseIncompleteIsBounded(t *testing.T) {
	tests := []struct {
		name   string
		p      Parser
		prefix []byte
		limit  int
	}{
		{"v1", Parser{}, []byte("PROXY "), MaxV1Len},
		{"v1 UNKNOWN", Parser{}, []byte("PROXY UNKNOWN "), MaxV1Len},
		{"v2 default limit", Parser{}, v2(0x21, v2TCP4, nil, DefaultMaxV2Payload), v2FixedLen + DefaultMaxV2Payload},
		{"v2 custom limit", Parser{MaxV2Payload: 300}, v2(0x21, v2TCP6, nil, 300), v2FixedLen + 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bytes.Clone(tt.prefix)
			for len(b) < tt.limit-1 {
				b = append(b, 'x')
			}
			if _, err := tt.p.Parse(b); err != ErrIncomplete {
				t.Fatalf("Parse(%d bytes) = %v, want ErrIncomplete below the limit", len(b), err)
			}
			b = append(b, 'x')
			if _, err := tt.p.Parse(b); err == ErrIncomplete {
				t.Fatalf("Parse(%d bytes) still incomplete at the limit", len(b))
			}
		})
	}
	if _, err := (Parser{MaxV2Payload: 300}).Parse(v2(0x21, v2TCP6, nil, 301)); !errors.Is(err, ErrTooLong) {
		t.Fatalf("custom limit: %v, want ErrTooLong", err)
	}
}

func TestParseEmpty(t *testing.T) {
	if _, err := Parse(nil); err != ErrIncomplete {
		t.Fatalf("Parse(nil) = %v, want ErrIncomplete", err)
	}
}

func TestHeaderClient(t *testing.T) {
	peer := ap("10.0.0.5:4000")
	tests := []struct {
		h    Header
		want netip.AddrPort
	}{
		{Header{Command: Proxy, Source: ap("192.0.2.1:5")}, ap("192.0.2.1:5")},
		{Header{Command: Local}, peer},
		{Header{Command: Unknown}, peer},
	}
	for _, tt := range tests {
		if got := tt.h.Client(peer); got != tt.want {
			t.Errorf("%v.Client = %v, want %v", tt.h.Command, got, tt.want)
		}
	}
}

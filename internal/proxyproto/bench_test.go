package proxyproto

import (
	"net/netip"
	"testing"
)

// BenchmarkParse measures the cost per connection of the headers a loop
// sees most; all but v1 TCP6 must report 0 allocs/op.
func BenchmarkParse(b *testing.B) {
	cases := []struct {
		name string
		in   []byte
	}{
		{"v1/TCP4", []byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /ws HTTP/1.1\r\n")},
		{"v1/TCP6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\nGET /ws HTTP/1.1\r\n")},
		{"v2/TCP4", v2(0x21, v2TCP4, inet4Block("192.0.2.1", "198.51.100.2", 56324, 443), -1)},
		{"v2/TCP6+TLVs", v2(0x21, v2TCP6, append(inet6Block("2001:db8::1", "2001:db8::2", 56324, 443), tlvs...), -1)},
		{"v2/incomplete", v2(0x21, v2TCP4, nil, 12)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.in)))
			for b.Loop() {
				_, _ = Parse(c.in)
			}
		})
	}
}

func BenchmarkTrustedContains(b *testing.B) {
	tr, err := ParseTrusted("10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,2001:db8::/32")
	if err != nil {
		b.Fatal(err)
	}
	peer := netip.MustParseAddr("192.168.3.4")
	b.ReportAllocs()
	for b.Loop() {
		if !tr.Contains(peer) {
			b.Fatal("not trusted")
		}
	}
}

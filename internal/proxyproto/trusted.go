package proxyproto

import (
	"fmt"
	"net/netip"
	"strings"
)

// Trusted is the set of peers whose PROXY headers are believed: the
// addresses of the load balancers (-proxy-trusted). A connection from any
// other peer is refused, since a PROXY header lets its sender claim any
// client address. A Trusted is immutable and safe for concurrent use.
type Trusted struct {
	prefixes []netip.Prefix
}

// ParseTrusted parses a comma-separated list of CIDR prefixes
// ("10.0.0.0/8, 2001:db8::/32"); a bare address stands for itself alone.
// Host bits are cleared ("10.1.2.3/8" is 10.0.0.0/8). An empty list is an
// error: trusting nobody would refuse every connection.
func ParseTrusted(list string) (Trusted, error) {
	var t Trusted
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		var p netip.Prefix
		var err error
		if strings.Contains(item, "/") {
			p, err = netip.ParsePrefix(item)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(item)
			if err == nil && a.Zone() != "" {
				err = fmt.Errorf("an address with a zone")
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if err != nil {
			return Trusted{}, fmt.Errorf("proxyproto: trusted peers: %q is not a CIDR prefix or an address: %w", item, err)
		}
		t.prefixes = append(t.prefixes, p.Masked())
	}
	if len(t.prefixes) == 0 {
		return Trusted{}, fmt.Errorf("proxyproto: trusted peers: empty list")
	}
	return t, nil
}

// Contains reports whether peer, a connection's remote address, is a
// trusted proxy. IPv4-mapped IPv6 addresses (::ffff:10.0.0.1, as a dual-stack
// socket reports IPv4 peers) match IPv4 prefixes.
func (t Trusted) Contains(peer netip.Addr) bool {
	peer = peer.Unmap()
	for _, p := range t.prefixes {
		if p.Contains(peer) {
			return true
		}
	}
	return false
}

// Prefixes returns a copy of the trusted prefixes, for logs and docs.
func (t Trusted) Prefixes() []netip.Prefix {
	return append([]netip.Prefix(nil), t.prefixes...)
}

// String returns the prefixes as ParseTrusted accepts them.
func (t Trusted) String() string {
	s := make([]string, len(t.prefixes))
	for i, p := range t.prefixes {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

package server

import (
	"fmt"
	"strings"
)

// originPolicy decides which browser pages may open a WebSocket (the Origin
// header of the handshake). A handshake without Origin comes from a program,
// not a page, and is always accepted; a page is accepted when its origin is
// the server's own (Origin's host:port equal to the request's Host, in any
// case and with any scheme, as gorilla/websocket's default check does), or
// matches one of the -allowed-origins entries:
//
//   - any origin
//     https://app.example.com    that origin exactly (scheme, host and port)
//     app.example.com:8443       that host:port, with any scheme
//     *.example.com              any subdomain of example.com (not example.com itself), any scheme
//     https://*.example.com      the same with that scheme only
//
// A port in an entry must match the Origin's (an Origin leaves out its
// scheme's default port).
type originPolicy struct {
	any      bool
	patterns []originPattern
}

// originPattern is one -allowed-origins entry other than "*", in lower case.
type originPattern struct {
	scheme string // "" for any scheme
	host   string // host[:port]; for a wildcard, the suffix after "*", dot included
	suffix bool   // the entry was *.domain
}

// newOriginPolicy parses the -allowed-origins entries.
func newOriginPolicy(entries []string) (originPolicy, error) {
	var p originPolicy
	for _, e := range entries {
		if e == "*" {
			p.any = true
			continue
		}
		var pat originPattern
		rest := strings.ToLower(e)
		if scheme, host, ok := strings.Cut(rest, "://"); ok {
			pat.scheme, rest = scheme, host
		}
		if strings.HasPrefix(rest, "*.") {
			pat.suffix, rest = true, rest[1:]
		}
		pat.host = rest
		if pat.host == "" || pat.host == "." || strings.ContainsAny(pat.host, "/*?#@ ") || (pat.scheme == "" && strings.Contains(e, ":/")) {
			return originPolicy{}, fmt.Errorf("allowed origin %q: want *, scheme://host[:port], host[:port] or *.domain", e)
		}
		p.patterns = append(p.patterns, pat)
	}
	return p, nil
}

// allows reports whether a handshake with this Origin and Host header may
// open a WebSocket; origin is nil when the request had no Origin.
func (p *originPolicy) allows(origin, host []byte) bool {
	if origin == nil || p.any {
		return true
	}
	scheme, oh, ok := strings.Cut(string(origin), "://")
	if !ok || oh == "" || strings.ContainsAny(oh, "/?#@") {
		return false // "null" (sandboxed pages, file:) or not an origin at all
	}
	if strings.EqualFold(oh, string(host)) {
		return true
	}
	scheme, oh = strings.ToLower(scheme), strings.ToLower(oh)
	for _, pat := range p.patterns {
		if pat.scheme != "" && pat.scheme != scheme {
			continue
		}
		if pat.suffix && strings.HasSuffix(oh, pat.host) && len(oh) > len(pat.host) && !strings.Contains(oh[:len(oh)-len(pat.host)], ":") ||
			!pat.suffix && oh == pat.host {
			return true
		}
	}
	return false
}

// String says which policy is in force, for the start-up log.
func (p *originPolicy) String() string {
	switch {
	case p.any:
		return "any origin (-allowed-origins *)"
	case len(p.patterns) == 0:
		return "same origin only (Origin must match Host; -allowed-origins widens it)"
	}
	return fmt.Sprintf("same origin and %d -allowed-origins entries", len(p.patterns))
}

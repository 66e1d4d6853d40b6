// Package proxyproto parses the PROXY protocol header (versions 1 and 2,
// haproxy.org's proxy-protocol.txt) that a load balancer sends before the
// client's bytes, so a server behind HAProxy, nginx or an AWS NLB learns the
// client's real address.
//
// Parsing is incremental and allocation-free for the common headers: an event
// loop hands Parse the bytes received so far on a new connection and gets
// back ErrIncomplete (read more, call again with the longer slice), a Header
// whose Len bytes it skips before the HTTP request, or an error after which
// it closes the connection. The package keeps no state between calls and
// never retains the slice, so the caller owns its buffer throughout.
//
// A PROXY header is believed only from peers in a Trusted list; anybody else
// could claim any address.
package proxyproto

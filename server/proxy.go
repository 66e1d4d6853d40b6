package server

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wspush/wspush/internal/proxyproto"
)

// serverProxy is the PROXY protocol on the public port (-proxy-protocol):
// which peers may send a header. Nil when the port takes clients directly.
type serverProxy struct {
	trusted  proxyproto.Trusted
	failures *prometheus.CounterVec // by proxyproto.Reason, and "untrusted"
}

// reasonUntrusted labels connections refused for coming from a peer not in
// -proxy-trusted.
const reasonUntrusted = "untrusted"

// proxyFailureReasons are the label values of wspush_proxy_header_failures_total.
var proxyFailureReasons = []string{reasonUntrusted, "no_header", "too_long", "version", "command", "family", "malformed", "timeout"}

func newServerProxy(cfg Config) (*serverProxy, error) {
	if cfg.ProxyTrusted == "" {
		return nil, errors.New("-proxy-protocol needs -proxy-trusted: the load balancers' addresses (CIDRs)")
	}
	trusted, err := proxyproto.ParseTrusted(cfg.ProxyTrusted)
	if err != nil {
		return nil, fmt.Errorf("-proxy-trusted: %w", err)
	}
	p := &serverProxy{trusted: trusted, failures: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wspush_proxy_header_failures_total",
		Help: "Connections closed for a missing or malformed PROXY protocol header, or for coming from a peer not in -proxy-trusted, by reason.",
	}, []string{"reason"})}
	for _, r := range proxyFailureReasons {
		p.failures.WithLabelValues(r)
	}
	return p, nil
}

// sessionProxy is what the PROXY header told about one connection.
type sessionProxy struct {
	pending bool           // the header has not been read yet
	client  netip.AddrPort // the client's address, once read
}

// startProxy is Handler.Open's part with -proxy-protocol: a peer that is not
// a trusted balancer is refused at once.
func (s *session) startProxy() {
	peer := socketPeer(s.c.Fd())
	s.proxy = &sessionProxy{pending: true}
	if !s.srv.proxy.trusted.Contains(peer.Addr()) {
		s.srv.proxy.failures.WithLabelValues(reasonUntrusted).Inc()
		s.srv.log.Debug("connection refused: peer not in -proxy-trusted", "peer", peer)
		s.c.Close(errUntrustedProxy)
	}
}

var (
	errUntrustedProxy = errors.New("peer not in -proxy-trusted")
	errProxyTimeout   = errors.New("no PROXY protocol header within -handshake-timeout")
)

// readProxy is Handler.Read until the PROXY header is whole: it comes first
// on the wire, before TLS and the HTTP request. Then the rest of b goes the
// way of every connection's bytes.
func (s *session) readProxy(b []byte) (used, need int) {
	h, err := proxyproto.Parse(b)
	if errors.Is(err, proxyproto.ErrIncomplete) {
		return 0, 0
	}
	if err != nil {
		s.srv.proxy.failures.WithLabelValues(proxyproto.Reason(err)).Inc()
		s.srv.log.Debug("PROXY protocol header refused", "peer", socketPeer(s.c.Fd()), "err", err)
		s.c.Close(err)
		return len(b), 0
	}
	peer := socketPeer(s.c.Fd())
	s.proxy.pending, s.proxy.client = false, h.Client(peer)
	s.srv.log.Debug("PROXY protocol header", "client", s.proxy.client, "proxy", peer,
		"version", h.Version, "command", h.Command.String())
	// -max-conns-per-ip counts the client, not the balancer.
	s.peer = toPeerIP(s.proxy.client.Addr())
	if !s.srv.peers.add(s.peer) {
		if s.srv.tls != nil {
			s.refuseBeforeTLS(reasonMaxConnsPerIP)
			return len(b), 0
		}
		s.overPeerLimit() // answered 429 once its request is whole
	} else if s.srv.tls != nil {
		s.startTLS() // the AcceptGate's slot was kept for it
		s.readTLS(b[h.Len:])
		return len(b), 0
	}
	u, n := s.read(b[h.Len:])
	return h.Len + u, n
}

// proxyPending reports whether the connection still owes its PROXY header.
func (s *session) proxyPending() bool { return s.proxy != nil && s.proxy.pending }

// closeProxy is Handler.Close's part: a connection that never sent its
// header never started the TLS handshake its accept reserved.
func (s *session) closeProxy() {
	if s.proxy.pending && s.srv.tls != nil {
		s.srv.tls.pool.Release()
	}
	s.proxy.pending = false
}

// clientAddr is the client's address as the server sees it: the PROXY
// header's source behind a balancer, else the socket's peer. Logs and
// per-client limits use it.
func (s *session) clientAddr() netip.AddrPort {
	if s.proxy != nil && !s.proxy.pending {
		return s.proxy.client
	}
	return socketPeer(s.c.Fd())
}

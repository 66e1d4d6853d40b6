package haproxytest

import (
	"fmt"
	"strings"
	"testing"
)

// Frontend describes one generated haproxy frontend and the single server
// it forwards to.
type Frontend struct {
	// Name identifies the frontend (HAProxy.Addr) and names its sections.
	Name string
	// Bind is the address to listen on; empty means 127.0.0.1, any port.
	Bind string
	// TLSCert and TLSKey, PEM, make the frontend terminate TLS (ALPN
	// http/1.1); the server then gets plain TCP.
	TLSCert, TLSKey []byte
	// HTTP selects mode http: haproxy parses each request and, on a
	// WebSocket upgrade, switches the connection to a tunnel bounded by
	// "timeout tunnel". Otherwise mode tcp passes bytes through.
	HTTP bool
	// Backend is the server's address.
	Backend string
	// SendProxy is the PROXY protocol version sent to the server: 0 none, 1
	// send-proxy, 2 send-proxy-v2.
	SendProxy int
	// HealthCheck turns on TCP health checks of the server every 200 ms;
	// with SendProxy they carry a PROXY header too (v2: command LOCAL).
	HealthCheck bool
}

// Generated configuration parts, shared by every frontend.
const (
	generatedGlobal = `global
    log stdout format raw daemon
    maxconn 4096

defaults
    log global
    timeout connect 5s
    timeout client 1m
    timeout server 1m
    # After a WebSocket upgrade in mode http, and for mode tcp once both
    # sides are established, the longer tunnel timeout applies.
    timeout tunnel 1h
`
	checkInterval = "200ms"
)

// StartFrontends generates a configuration from fs and starts haproxy on it
// (see Start).
func StartFrontends(t testing.TB, fs ...Frontend) *HAProxy {
	t.Helper()
	c := NewConfig(t)
	var sb strings.Builder
	sb.WriteString(generatedGlobal)
	addrs := map[string]string{}
	for _, f := range fs {
		if f.Name == "" || f.Backend == "" {
			t.Fatalf("haproxytest: frontend %+v needs a Name and a Backend", f)
		}
		if _, dup := addrs[f.Name]; dup {
			t.Fatalf("haproxytest: two frontends named %s", f.Name)
		}
		bindAddr := f.Bind
		if bindAddr == "" {
			bindAddr = "127.0.0.1:0"
		}
		bind, addr := c.Listen(bindAddr)
		addrs[f.Name] = addr
		writeFrontend(t, &sb, c, f, bind)
	}
	c.Text = sb.String()
	h := Start(t, c)
	h.addrs = addrs
	return h
}

func writeFrontend(t testing.TB, sb *strings.Builder, c *Config, f Frontend, bind string) {
	t.Helper()
	mode, logOpt := "tcp", "tcplog"
	if f.HTTP {
		mode, logOpt = "http", "httplog"
	}
	if (f.TLSCert == nil) != (f.TLSKey == nil) {
		t.Fatalf("haproxytest: frontend %s: TLS needs both a certificate and a key", f.Name)
	}
	if f.TLSCert != nil {
		crt := c.CertFile(f.Name+".pem", f.TLSCert, f.TLSKey)
		bind += " ssl crt " + crt + " alpn http/1.1"
	}
	server := "server s1 " + f.Backend
	switch f.SendProxy {
	case 0:
	case 1:
		server += " send-proxy"
	case 2:
		server += " send-proxy-v2"
	default:
		t.Fatalf("haproxytest: frontend %s: SendProxy %d is not 0, 1 or 2", f.Name, f.SendProxy)
	}
	if f.HealthCheck {
		server += " check inter " + checkInterval
	}
	fmt.Fprintf(sb, `
frontend %[1]s
    mode %[2]s
    option %[3]s
    bind %[4]s
    default_backend %[1]s_servers

backend %[1]s_servers
    mode %[2]s
    %[5]s
`, f.Name, mode, logOpt, bind, server)
}

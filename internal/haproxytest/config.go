package haproxytest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// Config is a haproxy configuration to run, and the sockets and files it
// refers to. It belongs to one test; make it with NewConfig.
type Config struct {
	// Text is the configuration. HAProxy itself expands "${NAME}" inside
	// double quotes from its environment, which is this process's plus Env:
	// that is how a committed configuration gets the test's addresses.
	Text string
	Env  map[string]string

	t         testing.TB
	dir       string
	listeners []*os.File
}

// NewConfig returns an empty Config whose files live in a temporary
// directory of t and whose sockets are closed at t's cleanup.
func NewConfig(t testing.TB) *Config {
	c := &Config{Env: map[string]string{}, t: t, dir: t.TempDir()}
	t.Cleanup(c.closeListeners)
	return c
}

// Listen opens a listening TCP socket on addr (port 0 for any free port)
// for haproxy to inherit, and returns the bind argument to use in the
// configuration ("fd@3") and the socket's address, where clients connect.
// Connections made before haproxy runs wait in the socket's backlog.
func (c *Config) Listen(addr string) (bind, listenAddr string) {
	c.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		c.t.Fatalf("haproxytest: listen %s: %v", addr, err)
	}
	defer ln.Close() // the duplicate in f stays open
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		c.t.Fatalf("haproxytest: listener file: %v", err)
	}
	c.listeners = append(c.listeners, f)
	// ExtraFiles[i] is the child's descriptor 3+i.
	return fmt.Sprintf("fd@%d", 2+len(c.listeners)), ln.Addr().String()
}

// File writes data to a file named name in the Config's directory and
// returns its path (certificates, error pages).
func (c *Config) File(name string, data []byte) string {
	c.t.Helper()
	path := filepath.Join(c.dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		c.t.Fatalf("haproxytest: %v", err)
	}
	return path
}

// CertFile writes a certificate and its key into one PEM file, the form
// haproxy's "crt" wants, and returns its path.
func (c *Config) CertFile(name string, certPEM, keyPEM []byte) string {
	c.t.Helper()
	return c.File(name, append(append([]byte(nil), certPEM...), keyPEM...))
}

func (c *Config) closeListeners() {
	for _, f := range c.listeners {
		f.Close()
	}
	c.listeners = nil
}

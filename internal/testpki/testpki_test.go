package testpki

import (
	"crypto/tls"
	"testing"
)

// TestHandshake checks the leaf verifies against the CA for its names and
// not for others, over a real loopback TLS handshake.
func TestHandshake(t *testing.T) {
	p, err := New("127.0.0.1", "wspush.test")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := p.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	for _, tt := range []struct {
		name string
		ok   bool
	}{{"127.0.0.1", true}, {"wspush.test", true}, {"other.test", false}} {
		c, err := tls.Dial("tcp", ln.Addr().String(), p.ClientConfig(tt.name))
		if err == nil {
			c.Close()
		}
		if (err == nil) != tt.ok {
			t.Errorf("ServerName %s: handshake error %v, want success %v", tt.name, err, tt.ok)
		}
	}
	if _, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "127.0.0.1"}); err == nil {
		t.Error("handshake verified without the test CA")
	}
}

package main

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/wspush/wspush/internal/testpki"
	"github.com/wspush/wspush/internal/testsupport"
)

// TestSIGHUPReloadsTheCertificate runs the built binary with native TLS and
// a file poll too slow to matter, replaces the pair, and sends SIGHUP: new
// connections get the new certificate.
func TestSIGHUPReloadsTheCertificate(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "wspush")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	first, err := testpki.New("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	second, err := testpki.New("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	write := func(p *testpki.PKI) (cert, key string) {
		t.Helper()
		return testsupport.WriteCertPair(t, dir, p.CertPEM, p.KeyPEM)
	}
	cert, key := write(first)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "-listen", addr, "-admin", "", "-tls-cert", cert, "-tls-key", key,
		"-tls-reload-interval", "1h", "-log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	// trusted reports whether the server's certificate chains to p's CA.
	trusted := func(p *testpki.PKI) bool {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return false
		}
		defer c.Close()
		_, err = c.ConnectionState().PeerCertificates[0].Verify(x509.VerifyOptions{Roots: p.Pool})
		return err == nil
	}
	poll := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	poll("the server to serve the first pair", func() bool { return trusted(first) })
	write(second)
	if trusted(second) {
		t.Fatal("the new pair is served before SIGHUP (the poll is 1h)")
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll("SIGHUP to put the new pair in service", func() bool { return trusted(second) })
}

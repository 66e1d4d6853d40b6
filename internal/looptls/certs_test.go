package looptls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wspush/wspush/internal/testsupport"
)

// servedSerial handshakes with the server (trusting every pair given) and
// returns the serial number of the certificate it presented.
func servedSerial(t *testing.T, addr string, certs ...*testCert) int64 {
	t.Helper()
	roots := x509.NewCertPool()
	for _, c := range certs {
		roots.AddCert(c.tls.Leaf)
	}
	cc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer cc.Close()
	return cc.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestCertReload: a valid new pair serves the handshakes after the reload;
// a bad one (mismatched key, garbage, expired) keeps the old one in
// service, with an error returned and logged.
func TestCertReload(t *testing.T) {
	dir := t.TempDir()
	a, b := newTestCert(t, time.Now().Add(time.Hour)), newTestCert(t, time.Now().Add(time.Hour))
	expired := newTestCert(t, time.Now().Add(-time.Minute))
	certFile, keyFile := a.write(t, dir)
	var logs testsupport.SyncBuffer
	certs, err := LoadCerts(certFile, keyFile, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := startTestServer(t, certs.TLSConfig(), NewPool(2, time.Minute), feedMode{})
	all := []*testCert{a, b, expired}
	if got := servedSerial(t, srv.addr(), all...); got != a.serialNo {
		t.Fatalf("served serial %d, want %d", got, a.serialNo)
	}

	b.write(t, dir)
	if err := certs.Reload(); err != nil {
		t.Fatalf("reload of a valid pair: %v", err)
	}
	if got := servedSerial(t, srv.addr(), all...); got != b.serialNo {
		t.Fatalf("after reload: serial %d, want the new %d", got, b.serialNo)
	}

	bad := []struct {
		name      string
		cert, key []byte
		wantInErr string
	}{
		{"mismatched-key", a.certPEM, b.keyPEM, "private key does not match"},
		{"garbage", []byte("not a certificate"), b.keyPEM, "failed to find any PEM data"},
		{"expired", expired.certPEM, expired.keyPEM, "expired"},
	}
	for _, c := range bad {
		os.WriteFile(certFile, c.cert, 0o600)
		os.WriteFile(keyFile, c.key, 0o600)
		err := certs.Reload()
		if err == nil || !strings.Contains(err.Error(), c.wantInErr) {
			t.Fatalf("%s: reload error %v, want one mentioning %q", c.name, err, c.wantInErr)
		}
		if got := servedSerial(t, srv.addr(), all...); got != b.serialNo {
			t.Fatalf("%s: serial %d, want the old %d", c.name, got, b.serialNo)
		}
	}
	if !strings.Contains(logs.String(), "tls certificate reload failed; keeping the old one") {
		t.Fatalf("no error logged:\n%s", logs.String())
	}
	if certs.Reloads.Load() != 1 || certs.ReloadErrors.Load() != 3 {
		t.Fatalf("reloads %d, errors %d; want 1, 3", certs.Reloads.Load(), certs.ReloadErrors.Load())
	}
}

// TestCertWatch: a changed file is noticed by its modification time and
// size; an unchanged one is not reloaded; a failed pair is not retried
// until the files change again.
func TestCertWatch(t *testing.T) {
	dir := t.TempDir()
	a, b := newTestCert(t, time.Now().Add(time.Hour)), newTestCert(t, time.Now().Add(time.Hour))
	certFile, keyFile := a.write(t, dir)
	certs, err := LoadCerts(certFile, keyFile, slog.New(slog.NewTextHandler(&testsupport.SyncBuffer{}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if changed, _ := certs.ReloadIfChanged(); changed {
		t.Fatal("reloaded unchanged files")
	}
	// Half a renewal: the new certificate, the old key.
	os.WriteFile(certFile, b.certPEM, 0o600)
	touch(t, certFile, time.Now().Add(time.Second))
	if changed, err := certs.ReloadIfChanged(); !changed || err == nil {
		t.Fatalf("half a renewal: changed %v err %v, want a change and an error", changed, err)
	}
	if changed, _ := certs.ReloadIfChanged(); changed {
		t.Fatal("a failed pair was tried again without a change")
	}
	if certs.Current().Leaf.SerialNumber.Int64() != a.serialNo {
		t.Fatal("the old pair is not in service")
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go certs.Watch(ctx, 10*time.Millisecond)
	os.WriteFile(keyFile, b.keyPEM, 0o600) // the renewal completes
	touch(t, keyFile, time.Now().Add(2*time.Second))
	testsupport.WaitFor(t, "the watcher to load the new pair", func() bool {
		return certs.Current().Leaf.SerialNumber.Int64() == b.serialNo
	})
}

// touch sets a file's modification time, so a rewrite within the
// filesystem's timestamp granularity still shows.
func touch(t *testing.T, name string, at time.Time) {
	t.Helper()
	if err := os.Chtimes(name, at, at); err != nil {
		t.Fatal(err)
	}
}

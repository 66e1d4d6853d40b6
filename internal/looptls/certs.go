package looptls

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ALPNHTTP11 is the only application protocol offered: WebSocket upgrades
// are HTTP/1.1 requests.
const ALPNHTTP11 = "http/1.1"

// Certs is the server's certificate: a key pair loaded from two PEM files,
// replaced when Reload finds a valid new pair (on SIGHUP, which the caller
// handles, or when Watch sees the files change). A bad new pair keeps the
// old one in service and is reported. Safe for concurrent use; handshakes
// read the current pair without locking.
type Certs struct {
	certFile, keyFile string
	log               *slog.Logger

	cur atomic.Pointer[tls.Certificate]

	mu   sync.Mutex // serialises reloads
	seen stamp      // the files as they were at the last load attempt

	Reloads      atomic.Uint64 // pairs loaded after the first
	ReloadErrors atomic.Uint64 // reloads that kept the old pair
}

// stamp identifies a version of the two files cheaply.
type stamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

// LoadCerts loads the pair from certFile and keyFile (PEM, the key
// matching the first certificate, intermediates after it).
func LoadCerts(certFile, keyFile string, log *slog.Logger) (*Certs, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Certs{certFile: certFile, keyFile: keyFile, log: log}
	s.seen, _ = s.stat()
	cert, err := s.load()
	if err != nil {
		return nil, err
	}
	s.cur.Store(cert)
	log.Info("tls certificate loaded", "cert", certFile, "subject", cert.Leaf.Subject.String(),
		"not_after", cert.Leaf.NotAfter)
	return s, nil
}

func (s *Certs) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls key pair %s, %s: %w", s.certFile, s.keyFile, err)
	}
	if now := time.Now(); now.After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("tls certificate %s expired at %s", s.certFile, cert.Leaf.NotAfter.Format(time.RFC3339))
	}
	return &cert, nil
}

func (s *Certs) stat() (stamp, error) {
	c, err := os.Stat(s.certFile)
	if err != nil {
		return stamp{}, err
	}
	k, err := os.Stat(s.keyFile)
	if err != nil {
		return stamp{}, err
	}
	return stamp{c.ModTime(), k.ModTime(), c.Size(), k.Size()}, nil
}

// GetCertificate is tls.Config.GetCertificate: the current pair.
func (s *Certs) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cur.Load(), nil
}

// Current is the pair in service.
func (s *Certs) Current() *tls.Certificate { return s.cur.Load() }

// Reload reads the files again. A valid pair replaces the current one for
// the handshakes that start afterwards; on an error the current pair stays
// and the error is logged and returned.
func (s *Certs) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen, _ = s.stat()
	return s.reloadLocked()
}

func (s *Certs) reloadLocked() error {
	cert, err := s.load()
	if err != nil {
		s.ReloadErrors.Add(1)
		old := s.cur.Load().Leaf
		s.log.Error("tls certificate reload failed; keeping the old one", "err", err,
			"old_subject", old.Subject.String(), "old_not_after", old.NotAfter)
		return err
	}
	s.cur.Store(cert)
	s.Reloads.Add(1)
	s.log.Info("tls certificate reloaded", "cert", s.certFile, "subject", cert.Leaf.Subject.String(),
		"not_after", cert.Leaf.NotAfter)
	return nil
}

// ReloadIfChanged reloads when either file's modification time or size
// differs from the last attempt. A pair that failed is not tried again
// until the files change again, so a half-written renewal is logged once
// per change, not once per tick.
func (s *Certs) ReloadIfChanged() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now, err := s.stat()
	if err != nil || now == s.seen {
		return false, nil // a missing file mid-renewal: wait for it
	}
	s.seen = now
	return true, s.reloadLocked()
}

// Watch calls ReloadIfChanged every interval until ctx is done. Two stat
// calls per tick: cheap enough for seconds.
func (s *Certs) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.ReloadIfChanged()
		}
	}
}

// TLSConfig is the server configuration: TLS 1.2 and 1.3 with Go's default
// cipher suites and curves, ALPN http/1.1, the certificate from s.
func (s *Certs) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{ALPNHTTP11},
		GetCertificate: s.GetCertificate,
	}
}

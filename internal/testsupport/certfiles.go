package testsupport

import (
	"os"
	"path/filepath"
	"testing"
)

// WriteCertPair writes a PEM certificate and its key as cert.pem and
// key.pem in dir, for a server that takes files (-tls-cert, -tls-key), and
// returns their paths. The key goes first: a server watching the files
// that sees a new certificate finds its key already there.
func WriteCertPair(tb testing.TB, dir string, certPEM, keyPEM []byte) (certFile, keyFile string) {
	tb.Helper()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	return certFile, keyFile
}

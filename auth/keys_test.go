package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadHMACSecretFile(t *testing.T) {
	secret := strings.Repeat("k", 40)
	tests := []struct {
		name    string
		content string
		want    string // "" means an error is expected
	}{
		{"plain", secret, secret},
		{"trailing newline", secret + "\n", secret},
		{"trailing CRLF", secret + "\r\n", secret},
		{"only one newline is trimmed", secret + "\n\n", secret + "\n"},
		{"leading space kept", " " + secret, " " + secret},
		{"empty", "", ""},
		{"just a newline", "\n", ""},
		{"too short", "xq9zk\n", ""},
		{"too large", strings.Repeat("x", maxKeyFile+1), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadHMACSecretFile(writeFile(t, []byte(tt.content)))
			if tt.want == "" {
				if err == nil {
					t.Fatalf("accepted %q", got)
				}
				if strings.Contains(err.Error(), strings.TrimSpace(tt.content)) && len(tt.content) > 4 {
					t.Fatalf("error %q shows the secret", err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := LoadHMACSecretFile(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Fatal("absent file accepted")
	}
}

func TestParsePublicKeyPEM(t *testing.T) {
	k := newTestKeys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert := selfSigned(t, k.ec256)
	privDER, err := x509.MarshalPKCS8PrivateKey(k.rsa)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pem  []byte
		algs algSet // 0 means an error is expected
	}{
		{"RSA PKIX", pemOf(t, &k.rsa.PublicKey), algsRSA},
		{"RSA PKCS1", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)}), algsRSA},
		{"P-256", pemOf(t, &k.ec256.PublicKey), algES256},
		{"P-384", pemOf(t, &k.ec384.PublicKey), algES384},
		{"Ed25519", pemOf(t, k.ed.Public()), algEdDSA},
		{"certificate", cert, algES256},
		{"RSA 1024", pemOf(t, &small.PublicKey), 0},
		{"P-224", pemOf(t, &p224.PublicKey), 0},
		{"private key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0},
		{"two keys", append(pemOf(t, &k.rsa.PublicKey), pemOf(t, &k.ec256.PublicKey)...), 0},
		{"not PEM", []byte("hello"), 0},
		{"garbage in block", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("xx")}), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := LoadPublicKeyFile(writeFile(t, tt.pem))
			if tt.algs == 0 {
				if err == nil {
					t.Fatalf("accepted %T", key)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if algs, _ := publicKeyAlgs(key); algs != tt.algs {
				t.Fatalf("algs %b, want %b", algs, tt.algs)
			}
		})
	}
}

func selfSigned(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tokens"},
		NotBefore:    testNow.Add(-time.Hour),
		NotAfter:     testNow.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: der}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

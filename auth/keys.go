package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// algSet is a set of JWS algorithms, one bit each: the algorithms a key may
// verify. Checking a token's alg against it is one AND.
type algSet uint16

const (
	algHS256 algSet = 1 << iota
	algHS384
	algHS512
	algRS256
	algRS384
	algRS512
	algPS256
	algPS384
	algPS512
	algES256
	algES384
	algES512
	algEdDSA

	algsHMAC = algHS256 | algHS384 | algHS512
	algsRSA  = algRS256 | algRS384 | algRS512 | algPS256 | algPS384 | algPS512
)

// algOf returns the bit of a JWS alg header value, 0 for "none" and for
// anything this package does not verify.
func algOf(name string) algSet {
	switch name {
	case "HS256":
		return algHS256
	case "HS384":
		return algHS384
	case "HS512":
		return algHS512
	case "RS256":
		return algRS256
	case "RS384":
		return algRS384
	case "RS512":
		return algRS512
	case "PS256":
		return algPS256
	case "PS384":
		return algPS384
	case "PS512":
		return algPS512
	case "ES256":
		return algES256
	case "ES384":
		return algES384
	case "ES512":
		return algES512
	case "EdDSA":
		return algEdDSA
	}
	return 0
}

// MinHMACSecret is the shortest HMAC secret accepted, in bytes: RFC 7518
// section 3.2 asks for a key at least as long as the hash (256 bits for
// HS256).
const MinHMACSecret = 32

// MinRSABits is the smallest RSA modulus accepted.
const MinRSABits = 2048

// maxKeyFile bounds the size of a secret or key file read at startup.
const maxKeyFile = 64 << 10

// publicKeyAlgs returns the algorithms a public key may verify, or an error
// for a key type, curve or size this package refuses.
func publicKeyAlgs(key crypto.PublicKey) (algSet, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return 0, fmt.Errorf("RSA key of %d bits: at least %d are required", k.N.BitLen(), MinRSABits)
		}
		return algsRSA, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return algES256, nil
		case elliptic.P384():
			return algES384, nil
		case elliptic.P521():
			return algES512, nil
		}
		return 0, fmt.Errorf("ECDSA curve %s: only P-256, P-384 and P-521 are supported", k.Curve.Params().Name)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return 0, errors.New("Ed25519 key of the wrong size")
		}
		return algEdDSA, nil
	}
	return 0, fmt.Errorf("key type %T is not an RSA, ECDSA or Ed25519 public key", key)
}

// ParsePublicKeyPEM parses one PEM block holding a public key ("PUBLIC KEY",
// "RSA PUBLIC KEY") or a certificate whose public key is used. RSA keys of
// at least MinRSABits, ECDSA keys on P-256/P-384/P-521 and Ed25519 keys are
// accepted. A private key is refused: wspush only verifies.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, errors.New("more than one PEM block: give exactly one public key")
	}
	var key crypto.PublicKey
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		cert, err = x509.ParseCertificate(block.Bytes)
		if err == nil {
			key = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE") {
			return nil, fmt.Errorf("PEM block %q is a private key: give the public key", block.Type)
		}
		return nil, fmt.Errorf("PEM block %q is not a public key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("PEM block %q: %w", block.Type, err)
	}
	if _, err := publicKeyAlgs(key); err != nil {
		return nil, err
	}
	return key, nil
}

// LoadPublicKeyFile reads and validates the PEM public key file given to
// -auth-public-key-file.
func LoadPublicKeyFile(path string) (crypto.PublicKey, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	key, err := ParsePublicKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("public key file %s: %w", path, err)
	}
	return key, nil
}

// LoadHMACSecretFile reads the HMAC secret file given to
// -auth-hmac-secret-file. The secret is the file's bytes less one trailing
// newline ("\n" or "\r\n", as editors and `echo` add); it must be at least
// MinHMACSecret bytes long.
func LoadHMACSecretFile(path string) ([]byte, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	secret := bytes.TrimSuffix(data, []byte("\n"))
	secret = bytes.TrimSuffix(secret, []byte("\r"))
	if err := checkHMACSecret(secret); err != nil {
		return nil, fmt.Errorf("HMAC secret file %s: %w", path, err)
	}
	return secret, nil
}

func checkHMACSecret(secret []byte) error {
	if len(secret) < MinHMACSecret {
		return fmt.Errorf("HMAC secret of %d bytes: at least %d are required", len(secret), MinHMACSecret)
	}
	return nil
}

// readKeyFile reads a small file, refusing one too large to be a key.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("key file %s: larger than %d bytes", path, maxKeyFile)
	}
	return data, nil
}

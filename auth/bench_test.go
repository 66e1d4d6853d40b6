package auth

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wspush/wspush/internal/testsupport"
)

// benchClaims is a realistic connection token: a user, a few subscribe
// patterns, one publish pattern, audience and issuer.
func benchClaims() jwt.MapClaims {
	return testsupport.WithClaims(claims("user-1234567"),
		"aud", "wspush", "iss", "https://backend.example",
		"topics", []string{"news.*", "ticker", "prices.*", "chat.room.17"},
		"publish", []string{"chat.room.17"})
}

func benchVerify(b *testing.B, v *Verifier, token string) {
	b.Helper()
	if _, err := v.Verify(token); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		c, err := v.Verify(token)
		if err != nil || c.Subject == "" {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyHS256(b *testing.B) {
	k := newTestKeys(b)
	v := newVerifier(b, Config{HMACSecret: k.secret, Audience: "wspush", Issuer: "https://backend.example"})
	benchVerify(b, v, testsupport.Mint(b, jwt.SigningMethodHS256, k.secret, "", benchClaims()))
}

func BenchmarkVerifyES256(b *testing.B) {
	k := newTestKeys(b)
	v := newVerifier(b, Config{PublicKey: &k.ec256.PublicKey, Audience: "wspush", Issuer: "https://backend.example"})
	benchVerify(b, v, testsupport.Mint(b, jwt.SigningMethodES256, k.ec256, "", benchClaims()))
}

func BenchmarkVerifyRS256(b *testing.B) {
	k := newTestKeys(b)
	v := newVerifier(b, Config{PublicKey: &k.rsa.PublicKey, Audience: "wspush", Issuer: "https://backend.example"})
	benchVerify(b, v, testsupport.Mint(b, jwt.SigningMethodRS256, k.rsa, "", benchClaims()))
}

// BenchmarkVerifyMalformed is the cost of refusing garbage, which anyone
// can send.
func BenchmarkVerifyMalformed(b *testing.B) {
	k := newTestKeys(b)
	v := newVerifier(b, Config{HMACSecret: k.secret})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify("not.a.jwt"); err == nil {
			b.Fatal("accepted")
		}
	}
}

func BenchmarkCheckSubscribe(b *testing.B) {
	k := newTestKeys(b)
	v := newVerifier(b, Config{HMACSecret: k.secret, Audience: "wspush", Issuer: "https://backend.example"})
	c, err := v.Verify(testsupport.Mint(b, jwt.SigningMethodHS256, k.secret, "", benchClaims()))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if c.CheckSubscribe("prices.eur.usd") != nil || c.CheckSubscribe("inbox#user-1234567") != nil {
			b.Fatal("refused")
		}
	}
}

package testsupport

import (
	"maps"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// Mint signs claims c with key by method m, as a backend mints a token for
// a client; kid goes in the header when not empty.
func Mint(tb testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.Claims) string {
	tb.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// WithClaims returns a copy of c with the claims kv (name, value pairs)
// set; a nil value removes the claim.
func WithClaims(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	if len(kv)%2 != 0 {
		panic("testsupport.WithClaims: claims come in name, value pairs")
	}
	out := maps.Clone(c)
	if out == nil {
		out = jwt.MapClaims{}
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

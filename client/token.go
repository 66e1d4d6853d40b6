package client

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// tokenExpiry reads the exp claim of a JWT without verifying the token: the
// server verifies it; the client only needs to know when to refresh. It
// returns false for anything that is not a JWT with a numeric exp.
func tokenExpiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Exp == nil {
		return time.Time{}, false
	}
	f, err := claims.Exp.Float64()
	if err != nil || f <= 0 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// refreshDelay is how long after now to refresh a token expiring at exp: at
// most before ahead of exp, and at most a third of the time left, so a token
// that lives seconds is refreshed too.
func refreshDelay(now, exp time.Time, before time.Duration) time.Duration {
	left := exp.Sub(now)
	if left <= 0 {
		return 0
	}
	return left - min(before, left/3)
}

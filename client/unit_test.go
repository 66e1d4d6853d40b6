package client

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBackoffBounds(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, 3 * time.Second
	r := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		attempt int
		ceiling time.Duration
	}{
		{0, 100 * time.Millisecond},
		{1, 200 * time.Millisecond},
		{3, 800 * time.Millisecond},
		{5, hi}, // 3.2s capped
		{1000, hi},
	}
	for _, tt := range tests {
		var largest time.Duration
		for range 2000 {
			d := backoff(tt.attempt, lo, hi, r)
			if d < 0 || d >= tt.ceiling {
				t.Fatalf("attempt %d: wait %v outside [0, %v)", tt.attempt, d, tt.ceiling)
			}
			largest = max(largest, d)
		}
		// Full jitter spreads over the whole range: 2000 draws all in the
		// lower 90% has probability 0.9^2000.
		if largest < tt.ceiling*9/10 {
			t.Fatalf("attempt %d: largest of 2000 waits %v, want near %v", tt.attempt, largest, tt.ceiling)
		}
	}
}

func TestTokenExpiry(t *testing.T) {
	exp := time.Unix(1_900_000_000, 0)
	tests := []struct {
		token string
		ok    bool
	}{
		{jwt(exp, "x"), true},
		{"opaque-token", false},
		{"a.b.c", false},
		{"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln", false},            // no exp
		{"eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE5MDAwMDAwMDAuNX0.c2ln", true}, // {"exp":1900000000.5}
	}
	for _, tt := range tests {
		got, ok := tokenExpiry(tt.token)
		if ok != tt.ok || (ok && !got.Equal(exp)) {
			t.Errorf("tokenExpiry(%q) = %v %v, want %v %v", tt.token, got, ok, exp, tt.ok)
		}
	}
}

func TestRefreshDelay(t *testing.T) {
	now := time.Unix(1000, 0)
	tests := []struct {
		left, before, want time.Duration
	}{
		{time.Hour, 30 * time.Second, time.Hour - 30*time.Second},
		{30 * time.Second, 30 * time.Second, 20 * time.Second}, // a third of what is left
		{3 * time.Second, 30 * time.Second, 2 * time.Second},
		{-time.Second, 30 * time.Second, 0},
	}
	for _, tt := range tests {
		if got := refreshDelay(now, now.Add(tt.left), tt.before); got != tt.want {
			t.Errorf("refreshDelay(left %v, before %v) = %v, want %v", tt.left, tt.before, got, tt.want)
		}
	}
}

func TestOptionDefaults(t *testing.T) {
	cfg := config{minBackoff: time.Minute, maxBuffered: -1}.withDefaults()
	if cfg.maxBackoff != time.Minute || cfg.maxBuffered != 1<<20 || cfg.dialTimeout != 10*time.Second {
		t.Fatalf("withDefaults: %+v", cfg)
	}
}

package pubsub

import (
	"errors"
	"strings"
	"testing"
)

func TestEpochValid(t *testing.T) {
	tests := []struct {
		epoch string
		ok    bool
	}{
		{"a", true},
		{"Zz09_-", true},
		{strings.Repeat("x", MaxEpochLen), true},
		{"", false},
		{strings.Repeat("x", MaxEpochLen+1), false},
		{"a b", false},
		{"a.b", false},
		{"a+b", false},
		{"a/b", false},
		{"a=", false},
		{"é", false},
		{"a\x00", false},
		{`a"`, false},
	}
	for _, tt := range tests {
		if got := ValidEpoch(tt.epoch); got != tt.ok {
			t.Errorf("ValidEpoch(%q) = %v, want %v", tt.epoch, got, tt.ok)
		}
		err := CheckEpoch(tt.epoch)
		if (err == nil) != tt.ok {
			t.Errorf("CheckEpoch(%q) = %v, want ok %v", tt.epoch, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrEpoch) {
			t.Errorf("CheckEpoch(%q) = %v, not ErrEpoch", tt.epoch, err)
		}
	}
}

func TestEpochNewIsValidAndUnique(t *testing.T) {
	const n = 10000
	seen := make(map[string]bool, n)
	for range n {
		e := NewEpoch()
		if !ValidEpoch(e) {
			t.Fatalf("NewEpoch() = %q, not a valid epoch", e)
		}
		if len(e) != 12 {
			t.Fatalf("NewEpoch() = %q, want 12 characters", e)
		}
		if seen[e] {
			t.Fatalf("NewEpoch() repeated %q within %d calls", e, len(seen))
		}
		seen[e] = true
	}
}

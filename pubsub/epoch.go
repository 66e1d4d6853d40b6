package pubsub

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
)

// MaxEpochLen is the longest epoch of the wire contract, in bytes.
const MaxEpochLen = 32

// epochRandomBytes is the randomness in a new epoch: 72 bits, so two
// streams of one topic (node restarts, expiries, any number of nodes) get the
// same epoch with a chance of about n²/2⁷³ after n of them, without any
// coordination. It encodes to 12 characters.
const epochRandomBytes = 9

// ErrEpoch is returned for an epoch outside the contract: 1 to 32 characters
// from [A-Za-z0-9_-].
var ErrEpoch = errors.New("invalid epoch")

// NewEpoch returns a fresh epoch for a topic stream that has just been
// (re)created: 12 characters of base64url, whose alphabet is exactly the
// contract's [A-Za-z0-9_-].
func NewEpoch() string {
	var b [epochRandomBytes]byte
	rand.Read(b[:]) // never fails: crypto/rand aborts the program instead
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ValidEpoch reports whether s is an epoch of the wire contract.
func ValidEpoch(s string) bool {
	if len(s) == 0 || len(s) > MaxEpochLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !epochChar(s[i]) {
			return false
		}
	}
	return true
}

// CheckEpoch returns an error describing why an epoch sent by a client is
// invalid, or nil.
func CheckEpoch(s string) error {
	if ValidEpoch(s) {
		return nil
	}
	if len(s) > MaxEpochLen {
		return fmt.Errorf("%w: longer than %d characters", ErrEpoch, MaxEpochLen)
	}
	return fmt.Errorf("%w %q: 1-%d characters from [A-Za-z0-9_-]", ErrEpoch, s, MaxEpochLen)
}

func epochChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

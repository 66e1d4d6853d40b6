package pubsub

import (
	"errors"
	"fmt"
)

// MaxTopicLen is the longest topic name, in bytes.
const MaxTopicLen = 200

// ErrTopicName is returned for a topic name outside the contract: 1 to 200
// bytes of printable ASCII without spaces.
var ErrTopicName = errors.New("invalid topic name")

// ValidTopic reports whether name is a valid topic name.
func ValidTopic(name string) bool {
	if len(name) == 0 || len(name) > MaxTopicLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x21 || name[i] > 0x7e {
			return false
		}
	}
	return true
}

// CheckTopic returns an error naming the topic when it is invalid.
func CheckTopic(name string) error {
	if ValidTopic(name) {
		return nil
	}
	if len(name) > MaxTopicLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrTopicName, MaxTopicLen)
	}
	return fmt.Errorf("%w %q: 1-%d bytes of printable ASCII without spaces", ErrTopicName, name, MaxTopicLen)
}

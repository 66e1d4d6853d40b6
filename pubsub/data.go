package pubsub

import (
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// ErrInvalidUTF8 is returned when a published value is not valid UTF-8: it
// would go out in a text frame, which every compliant client must then fail
// (RFC 6455 section 8.1). encoding/json alone lets invalid bytes inside a
// string through.
var ErrInvalidUTF8 = errors.New("data is not valid UTF-8")

// checkData is what a published value must be before it is pushed: UTF-8
// text holding one JSON value. It runs once per message, never per
// subscriber.
func checkData(data []byte) error {
	if !utf8.Valid(data) {
		return ErrInvalidUTF8
	}
	if !json.Valid(data) {
		return ErrInvalidJSON
	}
	return nil
}

// CheckData is checkData for a cluster broker: what it publishes to the
// stream and what it reads back for a replay must pass the check that
// Hub.Ingest applies to what it pushes live.
func CheckData(data []byte) error { return checkData(data) }

package server

import (
	"encoding/json"
	"strconv"

	"github.com/wspush/wspush/pubsub"
)

// A batch answer is one small JSON object per item: encoding/json's
// reflection over pubsub.Published cost more per item than the rest of the
// answer (docs/benchmarks.md, inbox). appendPublished writes the same bytes
// encoding/json writes for it (with SetEscapeHTML(false)), which
// TestAppendPublishedMatchesEncodingJSON checks.

// appendPublished appends p as encoding/json encodes it.
func appendPublished(b []byte, p pubsub.Published) []byte {
	b = append(b, `{"topic":`...)
	b = appendJSONString(b, p.Topic)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, p.Seq, 10)
	if p.Epoch != "" {
		b = append(b, `,"epoch":`...)
		b = appendJSONString(b, p.Epoch)
	}
	b = append(b, `,"subscribers":`...)
	b = strconv.AppendInt(b, int64(p.Subscribers), 10)
	if p.Duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string. Topic names and epochs are
// printable ASCII, where only '"' and '\' need escaping; anything else goes
// through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

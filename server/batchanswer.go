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

// appendJSONString appends s as a JSON string as encoding/json writes it:
// by hand for printable ASCII, as topic names and epochs are
// (appendASCIIString, replyencode.go), else through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	if out, ok := appendASCIIString(b, s); ok {
		return out
	}
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

package server

import "strconv"

// appendReply appends r's JSON, byte for byte what encoding/json makes of it
// (TestAppendReplyMatchesJSON), when every string in it is printable ASCII,
// as topic names are (pubsub.CheckTopic); ok is false otherwise, and the
// caller marshals it. Answers are encoded into a loop's scratch and queued as
// a copy (session.reply): a "subscribed" answer per topic of every new
// connection, which json.Marshal and a frame of its own left as three pieces
// of garbage, costs no allocation.
func appendReply(dst []byte, r reply) (_ []byte, ok bool) {
	dst = append(dst, `{"op":`...)
	if dst, ok = appendASCIIString(dst, r.Op); !ok {
		return dst, false
	}
	if r.Topic != "" {
		dst = append(dst, `,"topic":`...)
		if dst, ok = appendASCIIString(dst, r.Topic); !ok {
			return dst, false
		}
	}
	if r.Seq != nil {
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, *r.Seq, 10)
	}
	if r.Error != "" {
		dst = append(dst, `,"error":`...)
		if dst, ok = appendASCIIString(dst, r.Error); !ok {
			return dst, false
		}
	}
	if r.Epoch != "" {
		dst = append(dst, `,"epoch":`...)
		if dst, ok = appendASCIIString(dst, r.Epoch); !ok {
			return dst, false
		}
	}
	if r.Recovered != nil {
		dst = append(dst, `,"recovered":`...)
		dst = strconv.AppendBool(dst, *r.Recovered)
	}
	return append(dst, '}'), true
}

// appendASCIIString appends s as a JSON string as encoding/json writes it
// (with its HTML-safe escapes), if s is printable ASCII.
func appendASCIIString(dst []byte, s string) ([]byte, bool) {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e:
			return dst, false
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '<' || c == '>' || c == '&':
			dst = append(dst, `\u00`...)
			dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"'), true
}

const hexDigits = "0123456789abcdef"

package pubsub

import (
	"strconv"
	"sync"

	"github.com/gobwas/ws"

	"github.com/wspush/wspush/frames"
)

// AppendEnvelope appends the push envelope {"topic":T,"seq":N,"data":D} of the
// wire contract. data must be valid JSON.
func AppendEnvelope(dst []byte, topic string, seq uint64, data []byte) []byte {
	dst = append(dst, `{"topic":`...)
	dst = appendTopic(dst, topic)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}

// envelopeLen is len(AppendEnvelope(nil, topic, seq, data)).
func envelopeLen(topic string, seq uint64, data []byte) int {
	n := len(`{"topic":,"seq":,"data":}`) + len(topic) + 2 + len(data) + digits(seq)
	for i := 0; i < len(topic); i++ {
		if topic[i] == '"' || topic[i] == '\\' {
			n++
		}
	}
	return n
}

// PushFrame encodes the push of one message as a text frame, once, in one
// allocation; every subscriber's connection queues the same bytes.
func PushFrame(topic string, seq uint64, data []byte) frames.Prepared {
	n := envelopeLen(topic, seq, data)
	b := make([]byte, 0, frames.HeaderSize(n)+n)
	b = frames.AppendHeader(b, ws.OpText, true, n)
	b = AppendEnvelope(b, topic, seq, data)
	return frames.Prepared(b)
}

// Push is one published message on its way to subscribers, encoded once for
// all of them. It is immutable but for the compressed frame, made once on
// first use.
type Push struct {
	Frame frames.Prepared // the push as a plain text frame

	deflaters *sync.Pool // of *frames.Deflater
	once      sync.Once
	deflated  frames.Prepared

	timing pushTiming // push latency (latency.go)
}

// Deflated is the push as a permessage-deflate frame (plain when compressing
// does not make it smaller), for connections that negotiated compression.
// The first loop to ask compresses it; the others share the result.
func (p *Push) Deflated() frames.Prepared {
	p.once.Do(func() {
		_, n, _ := frames.ParseHeader(p.Frame) // our own frame: well formed
		d := p.deflaters.Get().(*frames.Deflater)
		p.deflated = frames.Prepared(d.AppendFrame(nil, ws.OpText, p.Frame[n:]))
		p.deflaters.Put(d)
	})
	return p.deflated
}

// appendTopic appends a valid topic name as a JSON string: printable ASCII
// needs escaping only for the quote and the backslash.
func appendTopic(dst []byte, topic string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(topic); i++ {
		if c := topic[i]; c == '"' || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, topic[i])
	}
	return append(dst, '"')
}

func digits(v uint64) int {
	n := 1
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}

// NewPush encodes one message of topic as a push: the frame every fan-out,
// history entry and replay from elsewhere (a cluster node's recovery from
// the stream) uses, compressed on demand from the Hub's shared pool.
func (h *Hub) NewPush(topic string, seq uint64, data []byte) *Push {
	return &Push{Frame: PushFrame(topic, seq, data), deflaters: &h.deflaters}
}

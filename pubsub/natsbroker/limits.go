package natsbroker

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wspush/wspush/pubsub"
)

// applyLimits sets the stream limits wspush is configured with on cfg. At
// any of them the stream drops its oldest messages (DiscardOld): a publish
// is never refused for space, and the store never grows past MaxBytes.
func (b *Broker) applyLimits(cfg *jetstream.StreamConfig) {
	cfg.MaxAge = b.cfg.MaxAge
	cfg.MaxBytes = b.cfg.MaxBytes
	cfg.MaxMsgsPerSubject = b.cfg.MaxPerTopic
	if cfg.MaxMsgsPerSubject <= 0 {
		cfg.MaxMsgsPerSubject = -1 // JetStream's "no limit"
	}
	cfg.Duplicates = b.cfg.DedupWindow
	cfg.Discard = jetstream.DiscardOld
}

// sameLimits reports whether have already holds the limits applyLimits sets
// in want.
func sameLimits(have, want jetstream.StreamConfig) bool {
	return have.MaxAge == want.MaxAge && have.MaxBytes == want.MaxBytes &&
		have.MaxMsgsPerSubject == want.MaxMsgsPerSubject && have.Duplicates == want.Duplicates &&
		have.Discard == want.Discard
}

// PublishIdempotent is Publish for a publisher that may retry: key (the
// HTTP Idempotency-Key) makes the message's Nats-Msg-Id, scoped to the topic,
// and the stream stores one message per id within its duplicate window
// (DedupWindow). A retry within the window is answered with the first
// publish's seq and Duplicate set, and reaches no one again. The caller
// checks key (server: CheckIdempotencyKey).
func (b *Broker) PublishIdempotent(ctx context.Context, topic, key string, data []byte) (pubsub.Published, error) {
	return b.publish(ctx, topic, data, Subject(topic)+":"+key) // a Subject holds no ":"
}

package natsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wspush/wspush/pubsub"
)

// The stream as every topic's history (v1.1, issue 11, docs/cluster.md
// "Recovery"). Reads go to the stream on the caller's goroutine, a batch of
// the topic's messages per JetStream direct get (the stream allows direct
// gets: ensureStream): a reader never holds a lock or an event loop while it
// waits.
//
// When is a position recoverable? The stream drops messages only at its
// limits, and every limit wspush sets drops the oldest first: the oldest of
// the topic (max_msgs_per_subject) or the oldest of all (max_age,
// max_bytes; discard old). So if the message at a topic's position p is
// still in the stream, every message of the topic after it is too, and the
// position is recoverable; if it is gone (or is not the topic's), some
// message after it may be gone too, and it is not. Position 0 (the topic had
// no message when the client subscribed) is recoverable only while the
// stream has never dropped a message at all (its first seq is 1 and it has
// no hole): that is the one case where no message of the topic can be
// missing. A message deleted by hand (nats stream rmm) is outside this
// argument.

// StreamMessage is one message of a topic as the stream holds it.
type StreamMessage struct {
	Seq  uint64
	Data []byte
}

// Read is what ReadSince finds.
type Read struct {
	Epoch string // the stream's epoch
	Last  uint64 // the topic's last seq in the stream when read, 0 when it has none

	// Recovered: the position was of this stream and every message of the
	// topic after it was still there; Messages then holds them, in seq
	// order, up to End.
	Recovered bool
	Messages  []StreamMessage
	// End is the seq up to which Messages is every message of the topic
	// after the position: at least Last unless Truncated.
	End       uint64
	Truncated bool // limit or maxBytes stopped the read before Last
}

// ReadSince reads what the stream holds of topic after from: whether from
// is recoverable (Read.Recovered), and then the messages after it, at most
// limit of them and about maxBytes of data (the message that passes
// maxBytes is the last). An empty from.Epoch means the stream's own.
// Failures to reach the stream wrap ErrUnavailable. Not from an event loop.
func (b *Broker) ReadSince(ctx context.Context, topic string, from pubsub.Position, limit, maxBytes int) (Read, error) {
	b.errMu.Lock()
	stream, epoch := b.stream, b.epoch
	b.errMu.Unlock()
	if err := b.Healthy(); err != nil {
		return Read{}, err
	}
	subject := inPrefix + Subject(topic)
	last, err := lastSeq(ctx, stream, subject)
	if err != nil {
		return Read{}, fmt.Errorf("%w: reading %q: %w", ErrUnavailable, topic, err)
	}
	r := Read{Epoch: epoch, Last: last, End: from.Seq}
	if from.Epoch != "" && from.Epoch != epoch {
		return r, nil
	}
	ok, err := intact(ctx, stream, subject, from.Seq, last)
	if err != nil {
		return Read{}, fmt.Errorf("%w: reading %q: %w", ErrUnavailable, topic, err)
	}
	if !ok {
		return r, nil
	}
	r.Recovered = true
	bytes := 0
	for r.End < last {
		if len(r.Messages) >= limit || bytes > maxBytes {
			r.Truncated = true
			break
		}
		msgs, err := b.directBatch(ctx, subject, r.End+1, limit-len(r.Messages), maxBytes-bytes)
		if err != nil {
			return Read{}, fmt.Errorf("%w: reading %q: %w", ErrUnavailable, topic, err)
		}
		if len(msgs) == 0 {
			// Dropped since last was read: the rest is no longer whole.
			r.Recovered, r.Messages, r.End = false, nil, from.Seq
			break
		}
		for _, m := range msgs {
			if json.Valid(m.Data) { // else not from a wspush node: never pushed live either (Hub.Ingest)
				r.Messages = append(r.Messages, m)
				bytes += len(m.Data)
			}
			r.End = m.Seq // may pass last: a message stored since, just as whole
		}
	}
	return r, nil
}

// JetStream's direct get (the stream's allow_direct): its request subject,
// and the statuses that end a batch's answers.
const (
	directGetPrefix = "$JS.API.DIRECT.GET."
	statusHeader    = "Status"
	statusEOB       = "204" // the batch is complete
	statusNotFound  = "404" // no message from that seq on
)

// directBatch reads up to batch messages on subject from seq on, in seq
// order, with one direct get request (a batch of answers ending with an
// EOB), about maxBytes of them at most: none when there is none.
func (b *Broker) directBatch(ctx context.Context, subject string, seq uint64, batch, maxBytes int) ([]StreamMessage, error) {
	inbox := b.nc.NewInbox()
	sub, err := b.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	req, _ := json.Marshal(directRequest{Seq: seq, NextFor: subject, Batch: max(batch, 1), MaxBytes: max(maxBytes, 1)})
	if err := b.nc.PublishRequest(directGetPrefix+b.cfg.Stream, inbox, req); err != nil {
		return nil, err
	}
	var msgs []StreamMessage
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, err
		}
		switch status := m.Header.Get(statusHeader); {
		case status == statusEOB, status == statusNotFound:
			return msgs, nil
		case status != "" && len(m.Data) == 0:
			return nil, fmt.Errorf("direct get: status %s %s", status, m.Header.Get("Description"))
		}
		n, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("direct get: %w", err)
		}
		msgs = append(msgs, StreamMessage{Seq: n, Data: m.Data})
	}
}

// directRequest is a direct get request for a batch of one subject's
// messages from a seq on.
type directRequest struct {
	Seq      uint64 `json:"seq"`
	NextFor  string `json:"next_by_subj"`
	Batch    int    `json:"batch"`
	MaxBytes int    `json:"max_bytes"`
}

// lastSeq is the seq of the last message on subject, 0 when there is none.
func lastSeq(ctx context.Context, stream jetstream.Stream, subject string) (uint64, error) {
	m, err := stream.GetLastMsgForSubject(ctx, subject)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return 0, nil
	case err != nil:
		return 0, err
	}
	return m.Sequence, nil
}

// intact reports whether every message on subject after seq p is still in
// the stream, last being the subject's last seq (see the argument above).
func intact(ctx context.Context, stream jetstream.Stream, subject string, p, last uint64) (bool, error) {
	switch {
	case p > last:
		return false, nil // not a position of this stream
	case p == 0:
		info, err := stream.Info(ctx)
		if err != nil {
			return false, err
		}
		return info.State.FirstSeq <= 1 && info.State.NumDeleted == 0, nil
	}
	m, err := stream.GetMsg(ctx, p)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return m.Subject == subject, nil
}

package natsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
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
//
// A recoverable position costs one request: a batch of the topic's
// messages from the position's own seq on, whose first answer is the
// position's message when it is still there, and whose end says how many
// are left (none: the read reached the topic's last message). Position 0
// adds a stream info request; an unrecoverable position, a request for the
// topic's last seq.
func (b *Broker) ReadSince(ctx context.Context, topic string, from pubsub.Position, limit, maxBytes int) (Read, error) {
	b.errMu.Lock()
	stream, epoch := b.stream, b.epoch
	b.errMu.Unlock()
	if err := b.Healthy(); err != nil {
		return Read{}, err
	}
	subject := inPrefix + Subject(topic)
	r, err := b.readSince(ctx, stream, subject, epoch, from, limit, maxBytes)
	if err == nil && (!r.Recovered || r.Truncated) {
		r.Last, err = lastSeq(ctx, stream, subject) // not known from the read
	}
	if err != nil {
		return Read{}, fmt.Errorf("%w: reading %q: %w", ErrUnavailable, topic, err)
	}
	return r, nil
}

// readSince is ReadSince on stream, whose epoch is epoch, for the topic's
// subject; Last is left to the caller unless the read reached it.
func (b *Broker) readSince(ctx context.Context, stream jetstream.Stream, subject, epoch string, from pubsub.Position, limit, maxBytes int) (Read, error) {
	r := Read{Epoch: epoch, End: from.Seq}
	if from.Epoch != "" && from.Epoch != epoch {
		return r, nil // another stream's position
	}
	// Each request starts at the last seq already known to be whole (the
	// position, then the last message read), whose message must still be
	// the first answer: else it was dropped, and so may be some after it.
	next, anchored := from.Seq, from.Seq > 0
	if !anchored {
		if b.hasDropped(epoch) {
			return r, nil
		}
		next = 1
	}
	bytes := 0
	for {
		want := limit - len(r.Messages)
		if anchored {
			want++
		}
		// want is 0 only from position 0 with limit 0 (GET
		// /history?limit=0): no message asked for, the position only, so
		// nothing is read and the read counts as cut short.
		msgs, pending, err := []StreamMessage(nil), uint64(1), error(nil)
		if want > 0 {
			msgs, pending, err = b.directBatch(ctx, subject, next, want, maxBytes-bytes)
		}
		if err != nil {
			return Read{}, err
		}
		if anchored {
			if len(msgs) == 0 || msgs[0].Seq != next {
				return Read{Epoch: epoch, End: from.Seq}, nil
			}
			msgs = msgs[1:]
		}
		r.Recovered = true
		for _, m := range msgs {
			if pubsub.CheckData(m.Data) == nil { // else not from a wspush node: never pushed live either (Hub.Ingest)
				r.Messages = append(r.Messages, m)
				bytes += len(m.Data)
			}
			r.End = m.Seq
		}
		switch {
		case pending == 0:
			r.Last = r.End
		case len(msgs) == 0 || len(r.Messages) >= limit || bytes > maxBytes:
			r.Truncated = true
		default:
			next, anchored = r.End, true
			continue
		}
		if from.Seq == 0 {
			// Checked after the read: a stream that has never dropped a
			// message now had all of the topic's when it was read.
			ok, err := b.neverDropped(ctx, stream, epoch)
			if err != nil || !ok {
				return Read{Epoch: epoch}, err
			}
		}
		return r, nil
	}
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

// neverDropped reports whether the stream, of epoch, has never dropped a
// message: its first seq is 1 and it has no hole (see the argument above),
// as a stream info request started after the call says. A removal either
// leaves a hole or moves the first seq on, and a hole goes only when the
// first seq passes it, so once it has dropped one it stays so: that is
// remembered (hasDropped). Readers that need the check at once share
// requests (dropCheck): a resume storm from position 0 costs a few stream
// info requests, not one per client.
func (b *Broker) neverDropped(ctx context.Context, stream jetstream.Stream, epoch string) (bool, error) {
	ok, err := b.drops.check(func() (bool, error) {
		info, err := stream.Info(ctx)
		if err != nil {
			return false, err
		}
		return info.State.FirstSeq <= 1 && info.State.NumDeleted == 0, nil
	})
	if err == nil && !ok {
		b.errMu.Lock()
		b.droppedIn = epoch
		b.errMu.Unlock()
	}
	return ok, err
}

// dropCheck shares the stream info requests of neverDropped: a caller
// takes the outcome of the first request that started after it called,
// waiting for one in flight or starting one.
type dropCheck struct {
	mu       sync.Mutex
	cond     *sync.Cond
	started  uint64 // requests started
	finished uint64 // the last request finished, by its number
	running  bool
	ok       bool
	err      error
}

func (c *dropCheck) check(request func() (bool, error)) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cond == nil {
		c.cond = sync.NewCond(&c.mu)
	}
	need := c.started + 1 // the first request to start from now on
	for c.finished < need {
		if c.running {
			c.cond.Wait()
			continue
		}
		c.started++
		id := c.started
		c.running = true
		c.mu.Unlock()
		ok, err := request()
		c.mu.Lock()
		c.running, c.finished, c.ok, c.err = false, id, ok, err
		c.cond.Broadcast()
	}
	return c.ok, c.err
}

// hasDropped reports whether the stream of epoch is known to have dropped a
// message.
func (b *Broker) hasDropped(epoch string) bool {
	b.errMu.Lock()
	defer b.errMu.Unlock()
	return b.droppedIn == epoch
}

// JetStream's direct get (the stream's allow_direct): its request subject,
// the statuses that end a batch's answers, and the end's count of the
// messages left.
const (
	directGetPrefix  = "$JS.API.DIRECT.GET."
	statusHeader     = "Status"
	statusEOB        = "204" // the batch is complete
	statusNotFound   = "404" // no message from that seq on
	numPendingHeader = "Nats-Num-Pending"
)

// maxDirectBatch bounds the messages one direct get request asks for. The
// channel that takes the answers is sized for all of them up front, and a
// caller's limit need not be small (GET /history?limit=2^40 once made a
// channel of 8 TiB): past it, readSince asks again from the last message
// read, as for an answer cut short by max_bytes.
const maxDirectBatch = 1024

// directBatch reads up to batch messages (at most maxDirectBatch) on
// subject from seq on, in seq order, with one direct get request (a batch
// of answers ending with an EOB), about maxBytes of them at most, and how
// many are left after them: none and 0 when there is none.
func (b *Broker) directBatch(ctx context.Context, subject string, seq uint64, batch, maxBytes int) ([]StreamMessage, uint64, error) {
	batch = min(max(batch, 1), maxDirectBatch)
	// The answers' own channel, sized for them all (the batch and its end,
	// or one status): SubscribeSync's would be nats.go's default of 64 Ki
	// entries per read.
	answers := make(chan *nats.Msg, batch+2)
	inbox := b.nc.NewInbox()
	sub, err := b.nc.ChanSubscribe(inbox, answers)
	if err != nil {
		return nil, 0, err
	}
	defer sub.Unsubscribe()
	req, _ := json.Marshal(directRequest{Seq: seq, NextFor: subject, Batch: batch, MaxBytes: max(maxBytes, 1)})
	if err := b.nc.PublishRequest(directGetPrefix+b.cfg.Stream, inbox, req); err != nil {
		return nil, 0, err
	}
	var msgs []StreamMessage
	for {
		var m *nats.Msg
		select {
		case m = <-answers:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
		switch status := m.Header.Get(statusHeader); {
		case status == statusNotFound:
			return nil, 0, nil
		case status == statusEOB:
			pending, err := strconv.ParseUint(m.Header.Get(numPendingHeader), 10, 64)
			if err != nil {
				return nil, 0, fmt.Errorf("direct get: end of batch: %w", err)
			}
			return msgs, pending, nil
		case status != "" && len(m.Data) == 0:
			return nil, 0, fmt.Errorf("direct get: status %s %s", status, m.Header.Get("Description"))
		}
		n, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("direct get: %w", err)
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

package natsbroker

import (
	"context"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/wspush/wspush/pubsub"
)

// A node cut off from NATS misses what the stream stores meanwhile: nats.go
// subscribes again on reconnect, but the messages republished while the
// node was away are gone for it. The Hub hears of every such gap (see
// pubsub/gap.go): a message that follows one says so itself (the
// Nats-Last-Sequence header, IngestAfter), and checkGaps finds the missed
// messages that nothing follows yet. The node's subscribers of a topic with
// a gap are closed with a code that makes clients resubscribe from their
// position, which the stream then replays (docs/cluster.md "After an
// outage"): closing rather than replaying in place keeps one recovery path,
// the one a client takes to any node.

// checkGaps runs once the stream is ready after a (re)connect: for each
// topic this node is subscribed to, the stream's last seq of it is compared
// with the node's own (Hub.CheckPosition), queried 16 topics at a time.
// nats.go has sent the subscriptions again before this runs, and NATS
// handles a connection's requests in order, so a message stored after the
// answer reaches the node, and one stored before it is at or below that
// last seq. The comparison itself runs on the ingest goroutine, behind the
// messages that arrived before the answer (a check message in the ingest
// channel): a message the node has received but not yet taken in is not
// taken for a gap.
func (b *Broker) checkGaps() {
	if b.attached.Load() == nil {
		return // no subscriber yet
	}
	b.subsMu.Lock()
	topics := make([]string, 0, len(b.subs))
	for topic := range b.subs {
		topics = append(topics, topic)
	}
	b.subsMu.Unlock()
	if len(topics) == 0 {
		return
	}
	b.errMu.Lock()
	stream := b.stream
	b.errMu.Unlock()
	eachTopic(topics, func(topic string) {
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.FlushTimeout)
		last, err := lastSeq(ctx, stream, inPrefix+Subject(topic))
		cancel()
		if err != nil {
			// Unknown: the topic's subscribers are told, rather
			// than risk a gap nobody sees; the topic's seq stays
			// (Hub.CheckPosition).
			b.log.Warn("cannot read a topic's position after a reconnect: its subscribers here are closed", "topic", topic, "err", err)
			last = pubsub.NoPrev
		}
		select {
		case b.msgs <- checkMsg(topic, last):
		case <-b.done:
		}
	})
}

// checkSubject marks a check message in the ingest channel: no NATS subject
// starts with a dot, so none can be mistaken for one.
const checkSubject = ".check"

// checkMsg is the ingest goroutine's order to compare topic's position with
// the stream's last seq of it.
func checkMsg(topic string, last uint64) *nats.Msg {
	return &nats.Msg{Subject: checkSubject, Reply: topic, Data: strconv.AppendUint(nil, last, 10)}
}

// check runs a check message on the ingest goroutine.
func (b *Broker) check(m *nats.Msg) {
	last, _ := strconv.ParseUint(string(m.Data), 10, 64) // ours: well formed
	if b.hub.CheckPosition(m.Reply, last) {
		b.log.Warn("messages stored while this node was away did not reach it: the topic's subscribers here are closed to resubscribe", "topic", m.Reply, "stream_last", last)
	}
}

// streamReplaced is ensureStream's finding that the stream is not the one
// this node knew (it was deleted and made again: its seqs restarted): every
// position of the old one is void, so every topic's subscribers here are
// closed to resubscribe, and the topics start anew in the new stream.
func (b *Broker) streamReplaced(old, epoch string) {
	b.log.Error("the stream was replaced: closing every subscriber of this node to resubscribe", "stream", b.cfg.Stream, "old_epoch", old, "epoch", epoch)
	if hub := b.attached.Load(); hub != nil {
		hub.Lose()
	}
}

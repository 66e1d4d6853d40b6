package server

import (
	"encoding/json"
	"fmt"
	"iter"
	"strings"

	"github.com/gobwas/ws"

	"github.com/wspush/wspush/frames"
	"github.com/wspush/wspush/pubsub"
)

// command is a client's JSON command (docs/protocol.md).
type command struct {
	Op     string          `json:"op"`
	Topics topicList       `json:"topics"`
	Topic  string          `json:"topic"`
	Data   json.RawMessage `json:"data"`
	Since  json.RawMessage `json:"since"` // (v1.1) positions to resume from, by topic (since.go)
	Token  string          `json:"token"` // refresh (v1.1)
}

// reply is every answer the server sends to a command.
type reply struct {
	Op    string  `json:"op"`
	Topic string  `json:"topic,omitempty"`
	Seq   *uint64 `json:"seq,omitempty"`
	Error string  `json:"error,omitempty"`

	Epoch     string `json:"epoch,omitempty"`     // (v1.1) subscribed
	Recovered *bool  `json:"recovered,omitempty"` // (v1.1) subscribed, for a topic named in since
}

func errorReply(msg string) reply { return reply{Op: "error", Error: msg} }

func (s *session) command(payload []byte) {
	if s.waiting() {
		s.holdCommand(payload) // answered in order, after the pending subscription (pending.go)
		return
	}
	var cmd command
	if err := json.Unmarshal(payload, &cmd); err != nil {
		s.admitted(0, len(payload))
		s.reply(errorReply("malformed command: " + err.Error()))
		return
	}
	topics := 0 // a sub or unsub costs a token per topic (ratelimit.go)
	if cmd.Op == "sub" || cmd.Op == "unsub" {
		if !s.chargeTopics(cmd.Op, cmd.Topics.n, len(payload)) {
			return // over the rate: nothing is answered but the refusal
		}
		topics = cmd.Topics.n
	}
	s.admitted(topics, len(payload))
	switch cmd.Op {
	case "sub":
		if cmd.Topics.empty() {
			s.reply(errorReply(`"sub" needs "topics": a non-empty array of topic names`))
		}
		since, err := parseSince(cmd.Since, cmd.Topics.has, s.srv.cfg.MaxSubs)
		if err != nil {
			s.reply(errorReply(err.Error()))
			return
		}
		s.subscribeAll(cmd.Topics.all(), since)
	case "unsub":
		if cmd.Topics.empty() {
			s.reply(errorReply(`"unsub" needs "topics": a non-empty array of topic names`))
		}
		for t := range cmd.Topics.all() {
			if s.gone() {
				return
			}
			s.unsubscribe(t)
			s.reply(reply{Op: "unsubscribed", Topic: t})
		}
	case "pub":
		s.publish(cmd)
	case opRefresh:
		s.refresh(cmd.Token)
	case "":
		s.reply(errorReply(`missing "op"`))
	default:
		s.reply(errorReply(fmt.Sprintf("unknown op %q", truncate(cmd.Op))))
	}
}

// subscribeAll subscribes to topics in order, those named in since from
// their position (since.go). A subscription pending on the cluster stops
// it: the rest waits, with since, until the Hub confirms (pending.go).
func (s *session) subscribeAll(topics iter.Seq[string], since map[string]pubsub.Position) {
	var rest []string
	for t := range topics {
		if s.gone() {
			return // dropped past -max-buffered while answering (limits.go)
		}
		if s.waiting() {
			rest = append(rest, t)
			continue
		}
		if from, ok := since[t]; ok {
			delete(since, t) // a topic listed twice resumes once
			if s.srv.nats == nil {
				s.subscribeSince(t, from)
				continue
			}
			s.subscribeFromStream(t, from) // answered when the recovery ends
			continue
		}
		s.subscribe(t)
	}
	if len(rest) > 0 {
		p := s.pending()
		p.rest, p.since = rest, since
	}
}

// roomFor reports whether the connection may take topic within -max-subs
// (a topic it holds always fits), answering the error when it may not.
func (s *session) roomFor(topic string) bool {
	if s.holds(topic) || len(s.topics) < s.srv.cfg.MaxSubs {
		return true
	}
	s.reply(errorReply(fmt.Sprintf("cannot subscribe to %q: at most %d topics per connection", topic, s.srv.cfg.MaxSubs)))
	return false
}

// mayJoin reports whether topic is a valid name the connection may
// subscribe to, answering the error when it is not.
func (s *session) mayJoin(topic string) bool {
	if err := pubsub.CheckTopic(topic); err != nil {
		s.reply(errorReply(err.Error()))
		return false
	}
	if err := s.checkSubscribe(topic); err != nil {
		s.authError(err, topic)
		return false
	}
	return true
}

// subscribe adds one topic and answers with its last sequence number.
func (s *session) subscribe(topic string) {
	if !s.mayJoin(topic) {
		return
	}
	if !s.roomFor(topic) {
		return
	}
	t, seq, waiting := s.add(topic)
	switch {
	case t == nil:
		return // dropped while answering (limits.go)
	case waiting:
		p := s.pending()
		p.waitOn = t // answered by Subscribed (pending.go)
		return
	}
	s.reply(reply{Op: "subscribed", Topic: topic, Seq: &seq, Epoch: t.Epoch()})
}

// add subscribes to a valid topic, if not yet held, within the limit the
// caller checked, and returns the topic's last sequence number, or waiting
// when the subscription is pending (cluster mode) and the Hub calls
// Subscribed later. A session dropped while answering (limits.go) subscribes
// nothing: t is nil.
func (s *session) add(topic string) (t *pubsub.Topic, seq uint64, waiting bool) {
	if s.gone() {
		return nil, 0, false
	}
	loop := s.c.Loop().ID()
	if t := s.topic(topic); t != nil {
		return t, t.Position(loop, s), false
	}
	t, seq, _ = s.srv.hub.Subscribe(loop, s, topic) // valid: checked by the caller
	s.topics = append(s.topics, t)
	return t, seq, t.Waiting(loop, s)
}

// topic is the held topic of that name, or nil.
func (s *session) topic(name string) *pubsub.Topic {
	for _, t := range s.topics {
		if t.Name() == name {
			return t
		}
	}
	return nil
}

func (s *session) holds(topic string) bool {
	for _, t := range s.topics {
		if t.Name() == topic {
			return true
		}
	}
	return false
}

func (s *session) unsubscribe(topic string) {
	for i, t := range s.topics {
		if t.Name() == topic {
			s.srv.hub.Unsubscribe(s.c.Loop().ID(), s, t)
			s.topics = append(s.topics[:i], s.topics[i+1:]...)
			return
		}
	}
}

func (s *session) publish(cmd command) {
	switch {
	case !s.srv.cfg.ClientPublish:
		s.reply(errorReply("publishing from clients is disabled on this server"))
		return
	case len(cmd.Data) == 0:
		s.reply(errorReply(`"pub" needs "data"`))
		return
	}
	if err := s.checkPublish(cmd.Topic); err != nil {
		s.authError(err, cmd.Topic)
		return
	}
	if q := s.ls().publishes; q != nil {
		// The cluster broker waits for NATS: hand the publish to the loop's
		// publisher goroutine rather than stall every connection of the loop.
		select {
		case q <- clientPublish{s: s, topic: cmd.Topic, data: cmd.Data}:
		default:
			s.reply(errorReply("too many publishes in flight: retry later"))
		}
		return
	}
	// On the loop: hand the message out without waiting for the loops (this
	// one included) to queue it.
	if _, err := s.srv.hub.Enqueue(cmd.Topic, cmd.Data); err != nil {
		s.countRefusedPublish(err)
		s.reply(errorReply(err.Error()))
	}
}

// reply queues one answer as a text frame.
func (s *session) reply(r reply) {
	ls := s.ls()
	if body, ok := appendReply(ls.replyJSON[:0], r); ok {
		ls.replyJSON = body
		ls.replyFrame = frames.AppendFrame(ls.replyFrame[:0], ws.OpText, true, body)
		s.sendCopy(ls.replyFrame)
		return
	}
	s.replyMarshal(r)
}

// replyMarshal is reply through encoding/json, for answers with other than
// printable ASCII in them. It marshals a deep copy of r so that nothing r
// points to escapes (escape analysis is not field-sensitive): the callers'
// reply values and their Seq stay on their stacks.
func (s *session) replyMarshal(r reply) {
	m := reply{Op: strings.Clone(r.Op), Topic: strings.Clone(r.Topic), Error: strings.Clone(r.Error), Epoch: strings.Clone(r.Epoch)}
	if r.Seq != nil {
		m.Seq = ptr(*r.Seq)
	}
	if r.Recovered != nil {
		m.Recovered = ptr(*r.Recovered)
	}
	b, _ := json.Marshal(m) // a reply always marshals
	s.send(frames.AppendFrame(nil, ws.OpText, true, b))
}

func ptr[T any](v T) *T { return &v }

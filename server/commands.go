package server

import (
	"encoding/json"
	"fmt"

	"github.com/gobwas/ws"

	"github.com/wspush/wspush/frames"
	"github.com/wspush/wspush/pubsub"
)

// command is a client's JSON command (docs/protocol.md).
type command struct {
	Op     string          `json:"op"`
	Topics []string        `json:"topics"`
	Topic  string          `json:"topic"`
	Data   json.RawMessage `json:"data"`
}

// reply is every answer the server sends to a command.
type reply struct {
	Op    string  `json:"op"`
	Topic string  `json:"topic,omitempty"`
	Seq   *uint64 `json:"seq,omitempty"`
	Error string  `json:"error,omitempty"`
}

func errorReply(msg string) reply { return reply{Op: "error", Error: msg} }

func (s *session) command(payload []byte) {
	if s.waiting() {
		s.hold(payload) // answered in order, after the pending subscription (pending.go)
		return
	}
	var cmd command
	if err := json.Unmarshal(payload, &cmd); err != nil {
		s.reply(errorReply("malformed command: " + err.Error()))
		return
	}
	switch cmd.Op {
	case "sub":
		if len(cmd.Topics) == 0 {
			s.reply(errorReply(`"sub" needs "topics": a non-empty array of topic names`))
		}
		for i, t := range cmd.Topics {
			s.subscribe(t)
			if s.waiting() {
				s.pend.rest = cmd.Topics[i+1:]
				break
			}
		}
	case "unsub":
		if len(cmd.Topics) == 0 {
			s.reply(errorReply(`"unsub" needs "topics": a non-empty array of topic names`))
		}
		for _, t := range cmd.Topics {
			s.unsubscribe(t)
			s.reply(reply{Op: "unsubscribed", Topic: t})
		}
	case "pub":
		s.publish(cmd)
	case "":
		s.reply(errorReply(`missing "op"`))
	default:
		s.reply(errorReply(fmt.Sprintf("unknown op %q", cmd.Op)))
	}
}

// subscribe adds one topic and answers with its last sequence number.
func (s *session) subscribe(topic string) {
	if err := pubsub.CheckTopic(topic); err != nil {
		s.reply(errorReply(err.Error()))
		return
	}
	if !s.holds(topic) && len(s.topics) >= s.srv.cfg.MaxSubs {
		s.reply(errorReply(fmt.Sprintf("cannot subscribe to %q: at most %d topics per connection", topic, s.srv.cfg.MaxSubs)))
		return
	}
	t, seq, waiting := s.add(topic)
	if waiting {
		s.pend.waitOn = t // answered by Subscribed (pending.go)
		return
	}
	s.reply(reply{Op: "subscribed", Topic: topic, Seq: &seq})
}

// add subscribes to a valid topic, if not yet held, within the limit the
// caller checked, and returns the topic's last sequence number, or waiting
// when the subscription is pending (cluster mode) and the Hub calls
// Subscribed later.
func (s *session) add(topic string) (t *pubsub.Topic, seq uint64, waiting bool) {
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
	if q := s.ls.publishes; q != nil {
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
		s.reply(errorReply(err.Error()))
	}
}

// reply queues one answer as a text frame.
func (s *session) reply(r reply) {
	b, _ := json.Marshal(r) // a reply always marshals
	s.c.Queue(frames.AppendFrame(nil, ws.OpText, true, b))
}

func ptr[T any](v T) *T { return &v }

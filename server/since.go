package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/wspush/wspush/pubsub"
)

// Resubscribing from a position (v1.1, issue 11): the "since" of a sub
// command or of the handshake's query, and the replay that follows its
// subscribed answer.

// sinceEntry is one topic's position as a client sends it; the fields stay
// raw so that a wrong type gets an error naming the field.
type sinceEntry struct {
	Epoch json.RawMessage `json:"epoch"`
	Seq   json.RawMessage `json:"seq"`
}

// parseSince reads a since object, {"a":{"epoch":"E","seq":12},...}, whose
// topics must all be among topics. Every error says what is wrong where.
func parseSince(raw []byte, listed func(topic string) bool, max int) (map[string]pubsub.Position, error) {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf(`"since" must be an object of {"epoch":"E","seq":N} by topic: %w`, err)
	}
	if len(entries) > max {
		return nil, fmt.Errorf(`"since" names %d topics, at most %d allowed`, len(entries), max)
	}
	since := make(map[string]pubsub.Position, len(entries))
	for topic, v := range entries {
		if !listed(topic) {
			return nil, fmt.Errorf(`"since" names %q, which is not in "topics"`, topic)
		}
		var e sinceEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf(`"since" of %q must be {"epoch":"E","seq":N}: %w`, topic, err)
		}
		var epoch string
		if err := json.Unmarshal(e.Epoch, &epoch); err != nil || len(e.Epoch) == 0 || e.Epoch[0] != '"' {
			return nil, fmt.Errorf(`"since" of %q needs "epoch": a string`, topic)
		}
		if err := pubsub.CheckEpoch(epoch); err != nil {
			return nil, fmt.Errorf(`"since" of %q: %w`, topic, err)
		}
		seq, err := strconv.ParseUint(string(e.Seq), 10, 64) // digits only: no sign, fraction, exponent or quotes
		if err != nil {
			return nil, fmt.Errorf(`"since" of %q needs "seq": an integer from 0 to %d`, topic, uint64(1<<64-1))
		}
		since[topic] = pubsub.Position{Epoch: epoch, Seq: seq}
	}
	return since, nil
}

// resume subscribes to a valid topic, within the limit the caller checked,
// from a position the client sent, and returns the subscribed answer; the
// messages to replay, if recovered, are appended to the loop's replay
// scratch (ls.replay) after planned bytes already due on the connection.
//
// A replay is the connection's backlog like any push: when it would take
// bufferedAmount past -max-buffered the answer is recovered:false (live
// pushes only) rather than a replay that drops the client as a slow
// consumer. For a topic already held the connection has had every push
// since it subscribed: recovered is true only when the client's position is
// where the connection stands, and nothing is replayed.
func (s *session) resume(topic string, from pubsub.Position, planned int) (reply, int) {
	loop := s.c.Loop().ID()
	for _, t := range s.topics {
		if t.Name() == topic {
			pos := pubsub.Position{Epoch: t.Epoch(), Seq: t.Position(loop, s)}
			s.srv.metrics.recovery(pos == from)
			return subscribedReply(topic, pos, pos == from), 0
		}
	}
	ls := s.ls()
	start := len(ls.replay)
	res, _ := s.srv.hub.Resume(loop, s, topic, from, ls.replay) // valid: checked by the caller
	s.topics = append(s.topics, res.Topic)
	ls.replay = res.Replay
	bytes := 0
	for _, m := range res.Replay[start:] {
		bytes += len(m.Push.Frame) // a compressed frame is never larger
	}
	if res.Recovered && s.c.Buffered()+planned+bytes > s.srv.cfg.MaxBuffered {
		clear(ls.replay[start:])
		ls.replay = ls.replay[:start]
		res.Recovered, bytes = false, 0
		res.Position = pubsub.Position{Epoch: res.Topic.Epoch(), Seq: res.Topic.Position(loop, s)}
		s.srv.log.Debug("replay larger than -max-buffered: answered recovered:false", "topic", topic)
	}
	s.srv.metrics.recovery(res.Recovered)
	return subscribedReply(topic, res.Position, res.Recovered), bytes
}

func subscribedReply(topic string, pos pubsub.Position, recovered bool) reply {
	return reply{Op: "subscribed", Topic: topic, Seq: &pos.Seq, Epoch: pos.Epoch, Recovered: &recovered}
}

// replay queues the loop's replay scratch to the connection as ordinary
// pushes, then empties it so that it pins no push.
func (s *session) replay() {
	ls := s.ls()
	for _, m := range ls.replay {
		s.Push(m.Push)
	}
	s.srv.metrics.replayed.Add(float64(len(ls.replay)))
	clear(ls.replay)
	ls.replay = ls.replay[:0]
}

// subscribeSince is subscribe from a position: the answer, then the
// replay, in the same loop turn (see pubsub.Hub.Resume).
func (s *session) subscribeSince(topic string, from pubsub.Position) {
	if !s.mayJoin(topic) {
		return
	}
	if !s.roomFor(topic) {
		return
	}
	r, _ := s.resume(topic, from, 0)
	s.reply(r)
	s.replay()
}

// epochOf is the epoch of a held topic.
func (s *session) epochOf(topic string) string {
	for _, t := range s.topics {
		if t.Name() == topic {
			return t.Epoch()
		}
	}
	return ""
}

// querySince reads the handshake's ?since= (URL-encoded JSON of the same
// shape as the command's) into ls.since.
func (ls *loopServer) querySince(values []string) error {
	switch len(values) {
	case 0:
		return nil
	case 1:
	default:
		return ls.reject(reasonBadRequest, http.StatusBadRequest, `"since" given more than once`)
	}
	since, err := parseSince([]byte(values[0]), func(t string) bool { return slices.Contains(ls.topics, t) }, ls.srv.cfg.MaxSubs)
	if err != nil {
		return ls.reject(reasonBadRequest, http.StatusBadRequest, err.Error())
	}
	ls.since = since
	return nil
}

// upgradeSince subscribes the handshake's topics, those named in since from
// their position, before the 101 goes out; the answers follow the 101 and
// the replays follow the answers, all in this loop turn.
func (s *session) upgradeSince(r handshakeResult) {
	answers := make([]reply, len(r.topics))
	planned := 0
	for i, t := range r.topics {
		if from, ok := r.since[t]; ok {
			var n int
			answers[i], n = s.resume(t, from, planned)
			planned += n
			continue
		}
		topic, seq, _ := s.add(t) // never waiting: not in cluster mode
		if topic == nil {
			return // dropped while answering (limits.go)
		}
		answers[i] = reply{Op: "subscribed", Topic: t, Seq: &seq, Epoch: topic.Epoch()}
	}
	s.sendCopy(r.resp) // the loop's scratch
	for _, a := range answers {
		s.reply(a)
	}
	s.replay()
}

package client

import (
	"encoding/json"
	"fmt"
)

// Ops and fields of the wire protocol (docs/protocol.md), matched by hand.
const (
	opSub          = "sub"
	opUnsub        = "unsub"
	opPub          = "pub"
	opRefresh      = "refresh" // v1.1
	opSubscribed   = "subscribed"
	opUnsubscribed = "unsubscribed"
	opRefreshed    = "refreshed" // v1.1
	opError        = "error"

	maxTopicLen = 200
)

// Position is where a subscriber stands in a topic's stream: the epoch names
// the stream (it changes when the server lost it), seq the last message seen.
// A v1 server sends no epochs: Epoch is "" and the position cannot be
// resumed from.
type Position struct {
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

// command is every client-to-server message.
type command struct {
	Op     string              `json:"op"`
	Topics []string            `json:"topics,omitempty"`
	Since  map[string]Position `json:"since,omitempty"`
	Topic  string              `json:"topic,omitempty"`
	Data   json.RawMessage     `json:"data,omitempty"`
	Token  string              `json:"token,omitempty"`
}

// inbound is every server-to-client message: a push has no op.
type inbound struct {
	Op        string          `json:"op"`
	Topic     string          `json:"topic"`
	Seq       uint64          `json:"seq"`
	Epoch     string          `json:"epoch"`     // v1.1
	Recovered *bool           `json:"recovered"` // v1.1, only for topics named in since
	Exp       int64           `json:"exp"`       // v1.1, refreshed
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

// checkTopic refuses names the server would refuse, so that the Client never
// waits for an answer the server gives without naming the topic (v1).
func checkTopic(topic string) error {
	if len(topic) == 0 || len(topic) > maxTopicLen {
		return fmt.Errorf("%w: %q has %d bytes, want 1 to %d", ErrInvalidTopic, topic, len(topic), maxTopicLen)
	}
	for i := 0; i < len(topic); i++ {
		if c := topic[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("%w: %q has byte %#x at %d", ErrInvalidTopic, topic, c, i)
		}
	}
	return nil
}

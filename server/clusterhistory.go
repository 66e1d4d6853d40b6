package server

import (
	"context"
	"net/http"
	"time"

	"github.com/wspush/wspush/pubsub"
)

// The cluster stream as the topics' history (v1.1, issue 11): its limits
// from the history flags, and GET /history read from it.

// maxHistoryReadBytes bounds the data of one GET /history answer in cluster
// mode; a reader pages on with since.
const maxHistoryReadBytes = 4 << 20

// clusterHistory is GET /history in cluster mode: read from the stream, on
// the admin request's goroutine (never a loop).
func (s *Server) clusterHistory(w http.ResponseWriter, ctx context.Context, topic string, from pubsub.Position, limit int) {
	if err := pubsub.CheckTopic(topic); err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(ctx, recoveryReadTimeout)
	defer cancel()
	read, err := s.nats.ReadSince(ctx, topic, from, limit, maxHistoryReadBytes)
	if err != nil {
		writeJSONError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	ans := historyAnswer{Topic: topic, Epoch: read.Epoch, Seq: read.Last, Recovered: read.Recovered,
		Messages: make([]historyMessage, len(read.Messages))}
	for i, m := range read.Messages {
		ans.Messages[i] = historyMessage{Seq: m.Seq, Data: m.Data}
		ans.Seq = max(ans.Seq, m.Seq) // stored after the last was read
	}
	writeJSON(w, http.StatusOK, ans)
}

// streamPerTopic is the stream's max_msgs_per_subject: -history-size, the
// messages a recovery can replay per topic, as on a single node. With
// history off (-history-size 0) the stream still keeps each topic's last
// message, which is its position.
func (c Config) streamPerTopic() int64 {
	return int64(max(c.historyConfig().Size, 1))
}

// streamMaxAge is the stream's max_age: -broker-max-age, raised to
// -history-ttl so that a message stays recoverable at least as long as on a
// single node.
func (c Config) streamMaxAge() time.Duration {
	return max(c.BrokerMaxAge, c.HistoryTTL)
}

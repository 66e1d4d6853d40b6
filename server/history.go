package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/wspush/wspush/pubsub"
)

// The topic history of a single node (v1.1, issue 11): its configuration,
// the sweeper that forgets idle topics, and the admin API's GET /history.
// A cluster node keeps none: its history is the stream (docs/cluster.md,
// clusterrecovery.go).

// historyConfig is the history the flags ask for.
func (c Config) historyConfig() pubsub.HistoryConfig {
	h := pubsub.HistoryConfig{Size: c.HistorySize, TTL: c.HistoryTTL, MaxBytes: c.HistoryMaxBytes}
	if c.HistoryOff {
		h.Size = 0
	}
	return h
}

// startHistory gives a single node's Hub its history and starts the sweeper
// that expires messages and forgets idle topics.
func (s *Server) startHistory() error {
	if s.nats != nil {
		return nil
	}
	cfg := s.cfg.historyConfig()
	if err := s.hub.SetHistory(cfg); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	s.hub.SetMaxTopics(s.cfg.MaxTopics)
	s.sweepDone = make(chan struct{})
	go s.sweep(sweepInterval(cfg.TTL), s.sweepDone)
	return nil
}

// sweepInterval is how often the sweeper runs: a tenth of the TTL, so a
// topic is forgotten at most 10% late, and at most once a second, since a
// sweep walks the table of topics.
func sweepInterval(ttl time.Duration) time.Duration {
	return max(10*time.Millisecond, min(ttl/10, time.Second))
}

// sweep runs Hub.Sweep every interval until done is closed. It is the only
// place topics are forgotten: nothing on the push path looks at the clock
// for that.
func (s *Server) sweep(interval time.Duration, done <-chan struct{}) {
	every(interval, done, func(now time.Time) {
		if n := s.hub.Sweep(now); n > 0 {
			s.log.Debug("forgot idle topics", "topics", n)
		}
	})
}

func (s *Server) stopHistory() {
	if s.sweepDone == nil {
		return
	}
	select {
	case <-s.sweepDone:
	default:
		close(s.sweepDone)
	}
}

// DefaultHistoryLimit is the messages GET /history returns without a limit.
const DefaultHistoryLimit = 100

// historyAnswer is the answer of GET /history.
type historyAnswer struct {
	Topic     string           `json:"topic"`
	Epoch     string           `json:"epoch"`
	Seq       uint64           `json:"seq"`
	Recovered bool             `json:"recovered"`
	Messages  []historyMessage `json:"messages"`
}

type historyMessage struct {
	Seq  uint64          `json:"seq"`
	Data json.RawMessage `json:"data"`
}

// handleHistory is GET /history?topic=a&since=12&limit=100 (v1.1): the
// topic's position and the messages after since still held, at most limit
// of them; recovered says whether they are all that came after since (a
// reader pages on with since = the last seq it got). since defaults to 0,
// limit to DefaultHistoryLimit; an optional epoch=E makes recovered false
// when the topic's stream is another one.
func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSONError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	q := r.URL.Query()
	topic := q.Get("topic")
	var from pubsub.Position
	limit := DefaultHistoryLimit
	var err error
	if v := q.Get("since"); v != "" {
		if from.Seq, err = strconv.ParseUint(v, 10, 64); err != nil {
			writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("since %q: want an integer from 0 to %d", v, uint64(1<<64-1)))
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 {
			writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want a non-negative integer", v))
			return
		}
	}
	if from.Epoch = q.Get("epoch"); from.Epoch != "" {
		if err := pubsub.CheckEpoch(from.Epoch); err != nil {
			writeJSONError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if s.nats != nil {
		s.clusterHistory(w, r.Context(), topic, from, limit)
		return
	}
	read, err := s.hub.ReadHistory(topic, from, limit)
	switch {
	case errors.Is(err, pubsub.ErrTopicName):
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, pubsub.ErrTooManyTopics):
		writeJSONError(w, http.StatusServiceUnavailable, err.Error())
		return
	case err != nil:
		writeJSONError(w, http.StatusInternalServerError, err.Error())
		return
	}
	ans := historyAnswer{Topic: topic, Epoch: read.Position.Epoch, Seq: read.Position.Seq, Recovered: read.Recovered,
		Messages: make([]historyMessage, len(read.Messages))}
	for i, m := range read.Messages {
		ans.Messages[i] = historyMessage{Seq: m.Seq, Data: pubsub.PushData(m.Push.Frame, topic, m.Seq)}
	}
	writeJSON(w, http.StatusOK, ans)
}

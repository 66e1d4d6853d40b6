package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wspush/wspush/pubsub"
)

// Batch publishing (v1.1, docs/protocol.md): POST /publish/batch takes many
// publishes to many topics in one request, POST /broadcast one message to
// many topics. On a single node a request's items are published at once
// (Hub.PublishBatch): one -max-inflight token for the request, given back
// once the loops have handed it out, and one task per loop, so a batch never
// holds a token while it waits for another and a loop wakes once for all of
// a batch's messages. With a cluster broker they go item by item through
// Server.Publish, each with its own token.

// ndjsonType is the Content-Type of a batch given as one item per line.
const ndjsonType = "application/x-ndjson"

// batchItem is one publish of a batch.
type batchItem struct {
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
}

// broadcastBody is the body of POST /broadcast.
type broadcastBody struct {
	Topics []string        `json:"topics"`
	Data   json.RawMessage `json:"data"`
}

// batchAnswer is the answer for one item: its publish or why it was not
// published.
type batchAnswer struct {
	pub pubsub.Published
	err string // "" when published
}

// The per-item and per-request errors, matched by the tests and documented
// in docs/protocol.md.
const (
	msgNotObject   = "item is not a JSON object"
	msgMissingData = `missing "data"`
	msgDuplicate   = "topic listed twice"
)

// batchMetrics count what the batch endpoints did.
type batchMetrics struct {
	requests *prometheus.CounterVec // by endpoint and outcome
	items    *prometheus.CounterVec // by outcome
}

// The outcome labels of wspush_batch_requests_total and wspush_batch_items_total.
const (
	outcomeOK        = "ok"
	outcomeError     = "error"     // items: not published
	outcomeMalformed = "malformed" // requests: 400
	outcomeTooLarge  = "too_large" // requests: 413, over -max-batch-bytes or -max-batch-items
)

// The endpoint labels of wspush_batch_requests_total.
const (
	endpointBatch     = "batch"
	endpointBroadcast = "broadcast"
)

func newBatchMetrics(reg prometheus.Registerer) *batchMetrics {
	m := &batchMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wspush_batch_requests_total", Help: "POST /publish/batch and /broadcast requests, by endpoint and outcome (ok, malformed: 400, too_large: 413).",
		}, []string{"endpoint", "outcome"}),
		items: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wspush_batch_items_total", Help: "Items of batches and topics of broadcasts, by outcome (ok: published, error: answered with an error).",
		}, []string{"outcome"}),
	}
	for _, e := range []string{endpointBatch, endpointBroadcast} {
		for _, o := range []string{outcomeOK, outcomeMalformed, outcomeTooLarge} {
			m.requests.WithLabelValues(e, o)
		}
	}
	m.items.WithLabelValues(outcomeOK)
	m.items.WithLabelValues(outcomeError)
	reg.MustRegister(m.requests, m.items)
	return m
}

// publishGuard admits what POST /publish admits (the admin token is checked
// by adminAuth around it): the POST method and, without an admin token, a
// JSON Content-Type (or one of also, for NDJSON), which a cross-site form
// cannot send without a preflight (docs/security.md).
func (s *Server) publishGuard(next http.HandlerFunc, also ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSONError(w, http.StatusMethodNotAllowed, "use POST")
			return
		}
		ct := r.Header.Get("Content-Type")
		if !s.hasAdminToken() && !isJSON(ct) && !(len(also) > 0 && isNDJSON(ct)) {
			w.Header().Set("Accept-Post", strings.Join(append([]string{"application/json"}, also...), ", "))
			writeJSONError(w, http.StatusUnsupportedMediaType, msgNeedJSON)
			return
		}
		next(w, r)
	})
}

// handleBatch serves POST /publish/batch: a JSON array of items, or NDJSON
// (one item per line) with Content-Type application/x-ndjson. The answer has
// one entry per item, in order, in the same format.
func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {
	ndjson := isNDJSON(r.Header.Get("Content-Type"))
	body, ok := s.readBatchBody(w, r, endpointBatch)
	if !ok {
		return
	}
	var items []batchItem
	var answers []batchAnswer
	var err error
	if ndjson {
		items, answers, err = s.parseNDJSON(body)
	} else {
		items, answers, err = s.parseArray(body)
	}
	switch {
	case errors.Is(err, errTooManyItems):
		s.batch.requests.WithLabelValues(endpointBatch, outcomeTooLarge).Inc()
		writeJSONError(w, http.StatusRequestEntityTooLarge, err.Error())
		return
	case err != nil:
		s.batch.requests.WithLabelValues(endpointBatch, outcomeMalformed).Inc()
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	pubs := make([]pubsub.BatchItem, len(items))
	for i, it := range items {
		// An item's data is one value of the JSON document just decoded, and
		// checkData (the parsers) checked its UTF-8.
		pubs[i] = pubsub.BatchItem{Topic: it.Topic, Data: it.Data, Checked: true}
	}
	s.publishAll(r.Context(), pubs, answers)
	s.batch.requests.WithLabelValues(endpointBatch, outcomeOK).Inc()
	s.writeAnswers(w, answers, ndjson)
}

// handleBroadcast serves POST /broadcast: {"topics":[...],"data":<value>}
// publishes data to every topic, encoded once per topic, and answers a JSON
// array with one entry per topic, in order.
func (s *Server) handleBroadcast(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readBatchBody(w, r, endpointBroadcast)
	if !ok {
		return
	}
	var b broadcastBody
	malformed := func(msg string) {
		s.batch.requests.WithLabelValues(endpointBroadcast, outcomeMalformed).Inc()
		writeJSONError(w, http.StatusBadRequest, msg)
	}
	if err := json.Unmarshal(body, &b); err != nil {
		malformed("malformed broadcast: " + err.Error())
		return
	}
	if b.Topics == nil {
		malformed(`missing "topics"`)
		return
	}
	if len(b.Topics) > s.cfg.MaxBatchItems {
		s.batch.requests.WithLabelValues(endpointBroadcast, outcomeTooLarge).Inc()
		writeJSONError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("more than %d topics", s.cfg.MaxBatchItems))
		return
	}
	if msg := s.checkData(b.Data); msg != "" {
		if msg == msgTooLarge(s.cfg.MaxMessage) {
			s.batch.requests.WithLabelValues(endpointBroadcast, outcomeTooLarge).Inc()
			writeJSONError(w, http.StatusRequestEntityTooLarge, msg)
			return
		}
		malformed(msg)
		return
	}
	answers := make([]batchAnswer, len(b.Topics))
	pubs := make([]pubsub.BatchItem, len(b.Topics))
	seen := make(map[string]bool, len(b.Topics))
	for i, topic := range b.Topics {
		if seen[topic] {
			answers[i] = batchAnswer{err: msgDuplicate}
			continue
		}
		seen[topic] = true
		pubs[i] = pubsub.BatchItem{Topic: topic, Data: b.Data, Checked: true} // decoded above, UTF-8 checked
	}
	s.publishAll(r.Context(), pubs, answers)
	s.batch.requests.WithLabelValues(endpointBroadcast, outcomeOK).Inc()
	s.writeAnswers(w, answers, false)
}

// readBatchBody reads the whole body, at most -max-batch-bytes; over it the
// request is answered 413 and ok is false.
func (s *Server) readBatchBody(w http.ResponseWriter, r *http.Request, endpoint string) (body []byte, ok bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxBatchBytes)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.batch.requests.WithLabelValues(endpoint, outcomeTooLarge).Inc()
			writeJSONError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", s.cfg.MaxBatchBytes))
			return nil, false
		}
		writeJSONError(w, http.StatusBadRequest, "reading body: "+err.Error())
		return nil, false
	}
	return body, true
}

// errTooManyItems is returned by the parsers for a batch of more than
// -max-batch-items items: the whole batch is refused before any publish.
var errTooManyItems = errors.New("too many items")

// parseArray parses a JSON array of items. A syntax error anywhere refuses
// the whole batch (nothing after it can be trusted); an item of the wrong
// shape gets its own error and the others are published.
func (s *Server) parseArray(body []byte) ([]batchItem, []batchAnswer, error) {
	if items, answers, ok := s.parseArrayFast(body); ok {
		return items, answers, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, nil, errors.New("malformed batch: the body must be a JSON array of items (or NDJSON with Content-Type " + ndjsonType + ")")
	}
	var items []batchItem
	var answers []batchAnswer
	for dec.More() {
		if len(items) == s.cfg.MaxBatchItems {
			return nil, nil, fmt.Errorf("%w: more than %d in one batch", errTooManyItems, s.cfg.MaxBatchItems)
		}
		var it batchItem
		err := dec.Decode(&it)
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &typeErr):
			items, answers = append(items, batchItem{}), append(answers, batchAnswer{err: itemTypeError(typeErr)})
			continue
		case err != nil:
			return nil, nil, fmt.Errorf("malformed batch at item %d: %w", len(items), err)
		}
		items, answers = append(items, it), append(answers, batchAnswer{err: s.checkData(it.Data)})
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, fmt.Errorf("malformed batch: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errors.New("malformed batch: data after the array")
	}
	return items, answers, nil
}

// parseArrayFast is parseArray for a batch without a fault: one
// json.Unmarshal of the whole array, with neither the Decoder's copy of the
// body nor its per-item setup. It reports false for anything else (not an
// array, a syntax error, an item of the wrong shape, too many items): the
// Decoder path then finds the fault and answers it as it always did.
func (s *Server) parseArrayFast(body []byte) ([]batchItem, []batchAnswer, bool) {
	items, ok := parseArrayShape(body, s.cfg.MaxBatchItems) // the usual shape, in place (batchparse.go)
	if !ok {
		if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '[' {
			return nil, nil, false
		}
		if err := json.Unmarshal(body, &items); err != nil || len(items) > s.cfg.MaxBatchItems {
			return nil, nil, false
		}
	}
	answers := make([]batchAnswer, len(items))
	for i := range items {
		answers[i].err = s.checkData(items[i].Data)
	}
	return items, answers, true
}

// parseNDJSON parses one item per line; blank lines are skipped. Each line is
// on its own, so a line that is not JSON gets its own error.
func (s *Server) parseNDJSON(body []byte) ([]batchItem, []batchAnswer, error) {
	var items []batchItem
	var answers []batchAnswer
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if len(items) == s.cfg.MaxBatchItems {
			return nil, nil, fmt.Errorf("%w: more than %d in one batch", errTooManyItems, s.cfg.MaxBatchItems)
		}
		var it batchItem
		err := json.Unmarshal(line, &it)
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &typeErr):
			items, answers = append(items, batchItem{}), append(answers, batchAnswer{err: itemTypeError(typeErr)})
		case err != nil:
			items, answers = append(items, batchItem{}), append(answers, batchAnswer{err: pubsub.ErrInvalidJSON.Error() + ": " + err.Error()})
		default:
			items, answers = append(items, it), append(answers, batchAnswer{err: s.checkData(it.Data)})
		}
	}
	return items, answers, nil
}

// itemTypeError says what is wrong with an item of the wrong shape.
func itemTypeError(err *json.UnmarshalTypeError) string {
	if err.Field == "" {
		return msgNotObject
	}
	return fmt.Sprintf("%q must be a string, not %s", err.Field, err.Value) // "data" takes any value: only "topic" has a type
}

// checkData returns why data cannot be published, "" when it can. The JSON
// syntax and the topic are checked by the Hub.
func (s *Server) checkData(data json.RawMessage) string {
	switch {
	case data == nil:
		return msgMissingData
	case len(data) > s.cfg.MaxMessage:
		return msgTooLarge(s.cfg.MaxMessage)
	case !utf8.Valid(data):
		// encoding/json copies a RawMessage as it is: a string in it may hold
		// bytes a WebSocket text frame must not carry.
		return pubsub.ErrInvalidUTF8.Error()
	}
	return ""
}

func msgTooLarge(max int) string { return fmt.Sprintf("data larger than %d bytes (-max-message)", max) }

// publishAll publishes, in order, the items whose answer is not an error
// yet, and answers them. With a broker that publishes batches (the Hub of a
// single node) that is one call: one in-flight token and one task per loop
// for the whole batch (pubsub/batch.go). A cluster broker publishes item by
// item, each with its own token.
func (s *Server) publishAll(ctx context.Context, items []pubsub.BatchItem, answers []batchAnswer) {
	bp, ok := s.broker.(pubsub.BatchPublisher)
	if !ok || s.shuttingDown.Load() {
		for i, it := range items {
			if answers[i].err == "" {
				answers[i] = s.publishItem(ctx, it.Topic, it.Data)
			}
		}
		return
	}
	idx := make([]int, 0, len(items))
	batch := make([]pubsub.BatchItem, 0, len(items))
	for i, it := range items {
		if answers[i].err == "" {
			idx = append(idx, i)
			batch = append(batch, it)
		}
	}
	res := make([]pubsub.BatchResult, len(batch))
	if err := bp.PublishBatch(ctx, batch, res); err != nil {
		for _, i := range idx {
			answers[i] = batchAnswer{err: err.Error()}
		}
		return
	}
	for k, i := range idx {
		if res[k].Err != nil {
			answers[i] = batchAnswer{err: res[k].Err.Error()}
		} else {
			answers[i] = batchAnswer{pub: res[k].Published}
		}
	}
}

// publishItem publishes one item and says how it went.
func (s *Server) publishItem(ctx context.Context, topic string, data []byte) batchAnswer {
	pub, err := s.Publish(ctx, topic, data)
	if err != nil {
		return batchAnswer{err: err.Error()}
	}
	return batchAnswer{pub: pub}
}

// writeAnswers writes the answers, in order, as a JSON array or as NDJSON,
// and counts them.
func (s *Server) writeAnswers(w http.ResponseWriter, answers []batchAnswer, ndjson bool) {
	failed := 0
	for _, a := range answers {
		if a.err != "" {
			failed++
		}
	}
	s.batch.items.WithLabelValues(outcomeError).Add(float64(failed))
	s.batch.items.WithLabelValues(outcomeOK).Add(float64(len(answers) - failed))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if !ndjson {
		buf.WriteByte('[')
	}
	var line []byte
	for i, a := range answers {
		if i > 0 && !ndjson {
			buf.WriteByte(',')
		}
		if a.err != "" {
			enc.Encode(map[string]string{"error": a.err})
			buf.Truncate(buf.Len() - 1) // the Encoder's newline
		} else {
			line = appendPublished(line[:0], a.pub)
			buf.Write(line)
		}
		if ndjson {
			buf.WriteByte('\n')
		}
	}
	if ndjson {
		w.Header().Set("Content-Type", ndjsonType)
	} else {
		buf.WriteByte(']')
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
}

// isNDJSON reports whether a Content-Type names NDJSON.
func isNDJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == ndjsonType
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
)

// The admin API on net/http, as bench/baseline serves it: POST /publish,
// GET /metrics (the names wsbench reads, bench/server.go) and /healthz.

func (s *server) adminMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/publish", s.servePublish)
	mux.HandleFunc("/metrics", s.serveMetrics)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux
}

func (s *server) servePublish(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "POST only"})
		return
	}
	name := r.URL.Query().Get("topic")
	if !validTopic(name) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid topic"})
		return
	}
	max := int64(s.cfg.maxMessage)
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "read body: " + err.Error()})
		return
	}
	if int64(len(body)) > max {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body too large"})
		return
	}
	if !json.Valid(body) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid JSON"})
		return
	}
	seq, n := s.publish(name, json.RawMessage(body))
	writeJSON(w, http.StatusOK, struct {
		Topic       string `json:"topic"`
		Seq         int64  `json:"seq"`
		Subscribers int    `json:"subscribers"`
	}{name, seq, n})
}

func (s *server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.mu.Lock()
	topics, subs := len(s.topics), 0
	for _, t := range s.topics {
		t.mu.Lock()
		subs += len(t.subs)
		t.mu.Unlock()
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	for _, m := range []struct {
		name, typ string
		v         float64
	}{
		{"wspush_connections", "gauge", float64(s.conns.Load())},
		{"wspush_handshakes_total", "counter", float64(s.handshakes.Load())},
		{"wspush_topics", "gauge", float64(topics)},
		{"wspush_subscriptions", "gauge", float64(subs)},
		{"wspush_messages_published_total", "counter", float64(s.published.Load())},
		{"wspush_messages_delivered_total", "counter", float64(s.delivered.Load())},
		{"go_goroutines", "gauge", float64(runtime.NumGoroutine())},
		{"go_memstats_heap_inuse_bytes", "gauge", float64(ms.HeapInuse)},
		{"go_memstats_stack_inuse_bytes", "gauge", float64(ms.StackInuse)},
		{"go_memstats_sys_bytes", "gauge", float64(ms.Sys)},
	} {
		fmt.Fprintf(w, "# TYPE %s %s\n%s %g\n", m.name, m.typ, m.name, m.v)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

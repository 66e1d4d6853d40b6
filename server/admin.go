package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wspush/wspush/pubsub"
)

// startAdmin serves the admin API on its own port with plain net/http: it is
// for backends and operators, not for the connection count the loops serve.
func (s *Server) startAdmin() error {
	mux := http.NewServeMux()
	mux.Handle("/publish", s.adminAuth(http.HandlerFunc(s.handlePublish)))
	s.batch = newBatchMetrics(s.metrics.reg)
	mux.Handle("/publish/batch", s.adminAuth(s.publishGuard(s.handleBatch, ndjsonType)))
	mux.Handle("/broadcast", s.adminAuth(s.publishGuard(s.handleBroadcast)))
	mux.HandleFunc("/healthz", s.handleHealth)
	mux.Handle("/admin/", s.adminPage()) // the page's files: no data, no token (adminpage.go)
	mux.Handle("/admin/stats", s.adminAuth(s.adminStatsHandler()))
	var scrape http.Handler = promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	if !s.cfg.MetricsPublic {
		scrape = s.adminAuth(scrape)
	}
	mux.Handle("/metrics", scrape)
	if s.cfg.Pprof {
		s.mountPprof(mux)
	}
	mux.Handle("/history", s.adminAuth(http.HandlerFunc(s.handleHistory)))
	mux.Handle("/disconnect", s.adminAuth(http.HandlerFunc(s.handleDisconnect)))
	mux.Handle("/unsubscribe", s.adminAuth(http.HandlerFunc(s.handleUnsubscribe)))
	mux.Handle("/topics", s.adminAuth(http.HandlerFunc(s.handleTopics)))
	mux.Handle("/presence", s.adminAuth(http.HandlerFunc(s.handlePresence)))
	ln, err := net.Listen("tcp", s.cfg.Admin)
	if err != nil {
		return fmt.Errorf("admin listen %s: %w", s.cfg.Admin, err)
	}
	s.adminLn = ln
	s.admin = s.adminServer(mux)
	go func() {
		if err := s.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin server failed", "err", err)
		}
	}()
	return nil
}

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSONError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	if !s.hasAdminToken() && !isJSON(r.Header.Get("Content-Type")) {
		// Without a token this is what tells a backend from a web page: a
		// cross-site form or fetch can send text/plain without a preflight,
		// never application/json (docs/security.md).
		w.Header().Set("Accept-Post", "application/json")
		writeJSONError(w, http.StatusUnsupportedMediaType, msgNeedJSON)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxMessage)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSONError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", s.cfg.MaxMessage))
			return
		}
		writeJSONError(w, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	res, err := s.publishWithKey(r.Context(), r.Header.Get(idempotencyHeader), r.URL.Query().Get("topic"), bytes.TrimSpace(body))
	switch {
	case errors.Is(err, pubsub.ErrTopicName), errors.Is(err, pubsub.ErrInvalidJSON), errors.Is(err, pubsub.ErrInvalidUTF8), errors.Is(err, errIdempotencyKey):
		writeJSONError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		writeJSONError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	status, code := "ok", http.StatusOK
	body := map[string]any{"connections": s.open.Load(), "loops": len(s.loops)}
	if s.nats != nil {
		body["broker"] = "ok"
		if err := s.nats.Healthy(); err != nil {
			// Local connections are still served; publishes fail (503).
			status, code = "degraded", http.StatusServiceUnavailable
			body["broker"] = err.Error()
		}
	}
	if s.shuttingDown.Load() {
		status, code = "shutting_down", http.StatusServiceUnavailable
	}
	body["status"] = status
	writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

package server

import (
	"mime"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"
)

// adminServer is the admin API's http.Server with every timeout set, so a
// client that sends its header or body slowly, or keeps an idle connection,
// holds a goroutine for at most AdminTimeout: the whole request must arrive
// within it (ReadTimeout covers the body), an answer gets twice it, and an
// idle keep-alive connection is closed after it.
func (s *Server) adminServer(h http.Handler) *http.Server {
	t := s.cfg.AdminTimeout
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t,
		ReadTimeout:       t,
		WriteTimeout:      2 * t,
		IdleTimeout:       t,
		MaxHeaderBytes:    s.cfg.MaxHeader,
	}
}

// mountPprof serves Go's profiles under /debug/pprof/ (with -pprof only),
// behind the admin token. /debug/pprof/cmdline is not served: it returns the
// process's arguments, secrets included. A CPU profile or trace runs longer
// than the admin write timeout: its own deadline is extended by the seconds
// it asks for.
func (s *Server) mountPprof(mux *http.ServeMux) {
	long := func(h http.HandlerFunc) http.Handler {
		return s.adminAuth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sec, _ := strconv.Atoi(r.URL.Query().Get("seconds"))
			if sec <= 0 {
				sec = 30 // pprof's default
			}
			d := time.Duration(min(sec, maxProfileSeconds)) * time.Second
			http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d + 2*s.cfg.AdminTimeout))
			h(w, r)
		}))
	}
	mux.Handle("/debug/pprof/", s.adminAuth(http.HandlerFunc(pprof.Index)))
	mux.Handle("/debug/pprof/cmdline", http.NotFoundHandler())
	mux.Handle("/debug/pprof/symbol", s.adminAuth(http.HandlerFunc(pprof.Symbol)))
	mux.Handle("/debug/pprof/profile", long(pprof.Profile))
	mux.Handle("/debug/pprof/trace", long(pprof.Trace))
}

// maxProfileSeconds bounds how long a profile request may keep its
// connection past the write timeout.
const maxProfileSeconds = 300

// isJSON reports whether a Content-Type header names application/json
// (parameters such as charset allowed).
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// msgNeedJSON is the error of a 415 to POST /publish (docs/protocol.md).
const msgNeedJSON = "Content-Type must be application/json (or send the admin token)"

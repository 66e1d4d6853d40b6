package server

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// adminAuth guards an admin endpoint with the admin token (Config.PublishToken,
// set with -publish-token, -publish-token-file or WSPUSH_PUBLISH_TOKEN): a
// request without "Authorization: Bearer <token>" is answered 401. With no
// token configured it lets every request through: the admin port is then
// protected by where it listens (loopback by default, docs/security.md).
//
// Every admin endpoint goes through it except /healthz, which load balancers
// probe without credentials, /metrics with -metrics-public, and the admin
// page's own files under /admin/ (adminpage.go: a browser cannot send the
// token when it navigates; the page holds no data and sends the token on its
// requests to /admin/stats and /publish). The token is compared in constant
// time and never echoed.
func (s *Server) adminAuth(h http.Handler) http.Handler {
	token := s.cfg.PublishToken
	if token == "" {
		return h
	}
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wspush admin"`)
			writeJSONError(w, http.StatusUnauthorized, msgUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// msgUnauthorized is the error of a 401 on the admin port (docs/protocol.md).
const msgUnauthorized = "unauthorized"

// bearerToken takes the token out of an Authorization header of the Bearer
// scheme (the scheme's name in any case, RFC 9110 section 11.1).
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// hasAdminToken reports whether the admin endpoints require the admin token.
func (s *Server) hasAdminToken() bool { return s.cfg.PublishToken != "" }

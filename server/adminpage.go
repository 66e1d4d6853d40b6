package server

import (
	"net/http"

	"github.com/wspush/wspush/web"
)

// adminPageCSP keeps the admin page to its own files: scripts and styles
// from /admin/ only (none inline), requests to this admin server only, no
// framing (clickjacking the publish form), no form posts elsewhere.
const adminPageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// adminPage serves the admin page's embedded files under /admin/ (web/admin).
//
// The files themselves are not behind the admin token: a browser cannot send
// an Authorization header when it navigates, and they hold nothing but the
// page's code. Everything the page shows comes from GET /admin/stats, and
// everything it does goes through POST /publish, both of which require
// "Authorization: Bearer <token>": the page asks for the token, keeps it in
// the tab's sessionStorage and sends it on each fetch.
func (s *Server) adminPage() http.Handler {
	files := http.StripPrefix("/admin/", http.FileServerFS(web.Admin()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSONError(w, http.StatusMethodNotAllowed, "use GET")
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", adminPageCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

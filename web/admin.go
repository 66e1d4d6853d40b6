package web

import (
	"embed"
	"io/fs"
)

// The admin page: index.html, admin.js and admin.css, served by the admin
// server under /admin/ (server/adminpage.go), never on the public port. It
// holds no data of its own: it asks for the admin token and polls
// GET /admin/stats with it (docs/protocol.md, "Admin page").
//
//go:embed admin
var adminFiles embed.FS

// Admin returns the admin page's files, index.html at the root.
func Admin() fs.FS {
	sub, err := fs.Sub(adminFiles, "admin")
	if err != nil {
		panic("web: " + err.Error()) // cannot happen: the directory is embedded
	}
	return sub
}

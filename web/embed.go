// Package web holds the browser side of wspush: the JavaScript client
// (wspush.js, and wspush.mjs for named ES imports) and the demo page
// (index.html), embedded in the binary. The server answers plain HTTP GET
// requests on its public port with File.
package web

import (
	"embed"
	"path"
	"sort"
)

//go:embed index.html wspush.js wspush.mjs
var files embed.FS

type asset struct {
	body        []byte
	contentType string
}

// assets maps a request path to its file, read once at start.
var assets = map[string]asset{}

func init() {
	routes := map[string]string{
		"/":           "index.html",
		"/index.html": "index.html",
		"/wspush.js":  "wspush.js",
		"/wspush.mjs": "wspush.mjs",
	}
	types := map[string]string{
		".html": "text/html; charset=utf-8",
		".js":   "text/javascript; charset=utf-8",
		".mjs":  "text/javascript; charset=utf-8",
	}
	for p, name := range routes {
		body, err := files.ReadFile(name)
		if err != nil {
			panic("web: " + err.Error()) // cannot happen: the files are embedded
		}
		assets[p] = asset{body, types[path.Ext(name)]}
	}
}

// File returns the body and Content-Type of the asset served at urlPath (the
// request path without query string, e.g. "/" or "/wspush.js"). ok is false
// for any other path, which the server answers with 404. The body is shared
// between calls: callers must not modify it.
func File(urlPath string) (body []byte, contentType string, ok bool) {
	a, ok := assets[urlPath]
	return a.body, a.contentType, ok
}

// Paths lists the request paths File serves, sorted.
func Paths() []string {
	paths := make([]string, 0, len(assets))
	for p := range assets {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths
}

package web

import (
	"bytes"
	"regexp"
	"slices"
	"testing"
)

func TestFile(t *testing.T) {
	for _, c := range []struct {
		path, contentType, contains string
	}{
		{"/", "text/html; charset=utf-8", "<title>wspush"},
		{"/index.html", "text/html; charset=utf-8", "<title>wspush"},
		{"/wspush.js", "text/javascript; charset=utf-8", "globalThis.WSPush"},
		{"/wspush.mjs", "text/javascript; charset=utf-8", "export const WSPush"},
	} {
		body, ct, ok := File(c.path)
		if !ok || ct != c.contentType || !bytes.Contains(body, []byte(c.contains)) {
			t.Errorf("File(%q) = %d bytes, %q, %v; want %q containing %q", c.path, len(body), ct, ok, c.contentType, c.contains)
		}
	}
	for _, p := range []string{"", "/ws", "/embed.go", "/index.htm", "/wspush.js/", "//wspush.js", "/../go.mod", "/interop/package.json", "/?x=1"} {
		if _, _, ok := File(p); ok {
			t.Errorf("File(%q) is served", p)
		}
	}
	if got, want := Paths(), []string{"/", "/index.html", "/wspush.js", "/wspush.mjs"}; !slices.Equal(got, want) {
		t.Errorf("Paths() = %q, want %q", got, want)
	}
}

// Every local script or stylesheet the page loads must be served.
func TestPageAssetsServed(t *testing.T) {
	page, _, _ := File("/")
	refs := regexp.MustCompile(`(?:src|href)="(/[^"]*)"`).FindAllSubmatch(page, -1)
	if len(refs) == 0 {
		t.Fatal("the page loads no local asset; expected /wspush.js")
	}
	for _, m := range refs {
		if _, _, ok := File(string(m[1])); !ok {
			t.Errorf("index.html loads %s, which File does not serve", m[1])
		}
	}
}

package server

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
)

// handshakeAllocCases are common upgrade requests: no token, no topic or a
// few topics.
var handshakeAllocCases = []struct {
	name, target string
	maxAllocs    float64 // what parseHandshake may allocate per request (see TestHandshakeAllocs)
}{
	{"no-topics", "/ws", 1},
	{"3-topics", "/ws?topics=news,sport,weather", 2}, // and the topics' string
}

// TestHandshakeAllocs bounds what deciding an upgrade allocates, the
// server's side alone (parseHandshake fed a prebuilt request, no I/O): what
// it allocates is garbage right after the handshake, and a connection storm
// leaves it resident (docs/benchmarks.md, idle memory). What is left is
// gobwas/ws's Sec-WebSocket-Accept value (28 bytes) and the string of the
// ?topics= value, which the topics' names are cut from.
func TestHandshakeAllocs(t *testing.T) {
	if raceDetector {
		t.Skip("allocation counts are noise under the race detector")
	}
	ls := fuzzLoopServer()
	for _, tc := range handshakeAllocCases {
		req := []byte(hsWS(tc.target))
		if r := ls.parseHandshake(req); r.status != http.StatusSwitchingProtocols {
			t.Fatalf("%s: answered %d, want 101: %q", tc.name, r.status, r.resp)
		}
		if n := testing.AllocsPerRun(100, func() { ls.parseHandshake(req) }); n > tc.maxAllocs {
			t.Errorf("%s: parseHandshake allocates %.1f times per request, want at most %.0f", tc.name, n, tc.maxAllocs)
		}
	}
}

// BenchmarkParseHandshake is the server's decision on an upgrade request,
// without I/O, with its allocations.
//
//	go test -run '^$' -bench ParseHandshake -benchmem ./server/
func BenchmarkParseHandshake(b *testing.B) {
	ls := fuzzLoopServer()
	for _, tc := range handshakeAllocCases {
		b.Run(tc.name, func(b *testing.B) {
			req := []byte(hsWS(tc.target))
			b.ReportAllocs()
			for b.Loop() {
				ls.parseHandshake(req)
			}
		})
	}
}

// TestSplitQuery: the in-place split gives url.ParseQuery's "topics" and
// "since" values, and its errors, for queries with and without escapes.
func TestSplitQuery(t *testing.T) {
	ls := fuzzLoopServer()
	for _, q := range []string{
		"", "topics=a", "topics=a,b&topics=c", "token=x.y.z&topics=a&since=%7B%7D",
		"topics=a%2Cb", "topics=a+b", "topics=a;b", "topics=%zz", "&&topics=&=x&topics",
		"since=1&since=2", "topics==a", "TOPICS=a", "topics=a&token=e30.e30.sig",
	} {
		topics, since, err := ls.splitQuery([]byte(q))
		want, wantErr := url.ParseQuery(q)
		if (err != nil) != (wantErr != nil) || err != nil && err.Error() != wantErr.Error() {
			t.Errorf("%q: error %v, url.ParseQuery's %v", q, err, wantErr)
			continue
		}
		if !slices.Equal(topics, want["topics"]) || !slices.Equal(since, want["since"]) {
			t.Errorf("%q: topics %q since %q, url.ParseQuery's %q %q", q, topics, since, want["topics"], want["since"])
		}
	}
}

package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/wspush/wspush/auth"
)

// fuzzAuthLoopServer is fuzzLoopServer with auth on: the HMAC test secret,
// anonymous connections allowed on public.*.
func fuzzAuthLoopServer(t testing.TB) *loopServer {
	ls := fuzzLoopServer()
	v, err := auth.New(auth.Config{HMACSecret: testSecret, AnonymousTopics: []string{"public.*"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ls.srv.auth = &serverAuth{v: v, refusals: newServerAuthRefusals()}
	return ls
}

// FuzzHandshakeAuth: with auth on, every answer is still a well-formed HTTP
// answer (fuzzCheck); an upgrade carries claims allowing each of its
// topics; an auth refusal is a 401 or 403 whose JSON body names a reason.
func FuzzHandshakeAuth(f *testing.F) {
	tok := hs(f, tokenClaims("42", 365*24*time.Hour, "aud", nil, "iss", nil, "topics", []string{"news.*"}))
	for _, seed := range []string{
		hsWS("/ws?topics=news.a&token=" + tok),
		hsWS("/ws?topics=inbox%2342,news.b", "Authorization: Bearer "+tok),
		hsWS("/ws?topics=secret&token=" + tok),
		hsWS("/ws?topics=public.x"),
		hsWS("/ws?token=" + tok + "&token=" + tok),
		hsWS("/ws", "Authorization: Bearer a.b.c", "Authorization: Bearer "+tok),
		hsWS("/ws?token=%zz"),
	} {
		f.Add([]byte(seed))
	}
	ls := fuzzAuthLoopServer(f)
	cfg := &ls.srv.cfg
	f.Fuzz(func(t *testing.T, req []byte) {
		r := ls.parseHandshake(slices.Clone(req))
		fuzzCheck(t, cfg, req, r)
		switch {
		case r.status == http.StatusSwitchingProtocols:
			if r.claims == nil {
				t.Fatal("an upgrade with auth on has no claims")
			}
			for _, tp := range r.topics {
				if err := r.claims.CheckSubscribe(tp); err != nil {
					t.Fatalf("upgrade with topic %q its claims refuse: %v", tp, err)
				}
			}
		case r.reason == reasonAuth:
			_, body, _ := bytes.Cut(r.resp, headerEnd)
			var m map[string]string
			if err := json.Unmarshal(body, &m); err != nil || !slices.Contains(auth.Reasons(), auth.Reason(m["error"])) {
				t.Fatalf("auth refusal body %q", body)
			}
			if r.status != auth.Reason(m["error"]).Status() {
				t.Fatalf("reason %q answered %d", m["error"], r.status)
			}
		}
	})
}

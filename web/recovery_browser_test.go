package web_test

// The browser test of recovery (v1.1, issue 11): the demo page in headless
// Chromium against an in-process server, whose connections the test drops
// server-side with Server.DropConnections. It is an external test package
// because the server imports package web.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wspush/wspush/internal/browsertest"
	"github.com/wspush/wspush/internal/testsupport"
	"github.com/wspush/wspush/server"
)

func startInProcess(t *testing.T, listen string) *server.Server {
	t.Helper()
	s, err := server.New(server.Config{Listen: listen, Admin: "127.0.0.1:0", Loops: 2, Logger: testsupport.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// until polls the JavaScript condition on the demo page until it is true,
// and fails with the event log and the news rows when it is not within
// browsertest.WaitTimeout.
func until(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	browsertest.WaitFor(t, ctx, what, cond,
		"event log", `[...document.querySelectorAll("#log li")].map(li => li.textContent).join("\n")`,
		"rows", newsSeqs)
}

// newsSeqs lists the seqs of the table's news rows, oldest first (the page
// prepends).
const newsSeqs = `[...document.querySelectorAll('#messages tr[data-topic="news"]')].map(tr => tr.dataset.seq).reverse().join(",")`

func recoveryLog(recovered bool) string {
	return fmt.Sprintf(`document.querySelectorAll('#log li[data-kind="recovery"][data-topic="news"][data-recovered="%v"]').length`, recovered)
}

func seqList(from, to int) string {
	var s []string
	for i := from; i <= to; i++ {
		s = append(s, fmt.Sprint(i))
	}
	return strings.Join(s, ",")
}

// TestBrowserRecovery: the page subscribes; its socket is closed
// server-side; 20 messages are published while it is away; after its
// reconnect it shows recovered:true and all of them, in order, once. A
// server restart shows recovered:false.
func TestBrowserRecovery(t *testing.T) {
	ctx := browsertest.New(t)
	s := startInProcess(t, "127.0.0.1:0")
	pub := func(s *server.Server, i int) {
		t.Helper()
		if _, err := s.Publish(context.Background(), "news", fmt.Appendf(nil, `{"from":"test","text":"message %d"}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+s.Addr().String()+"/?topics=news")); err != nil {
		t.Fatal(err)
	}
	until(t, ctx, "the subscription", `[...document.querySelectorAll("#log li")].some(li => li.textContent.includes("subscribed to news"))`)
	for i := 1; i <= 3; i++ {
		pub(s, i)
	}
	until(t, ctx, "the live pushes", newsSeqs+` === "1,2,3"`)

	if n := s.DropConnections(); n != 1 {
		t.Fatalf("dropped %d connections, want the page's 1", n)
	}
	for deadline := time.Now().Add(10 * time.Second); s.Conns() != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections left after the drop", s.Conns())
		}
	}
	for i := 4; i <= 23; i++ { // while the page waits for its reconnect (0.25-0.5 s)
		pub(s, i)
	}
	until(t, ctx, "the recovery", recoveryLog(true)+" === 1")
	until(t, ctx, "every push once, in order", newsSeqs+` === "`+seqList(1, 23)+`"`)
	if got := browsertest.Eval[int](t, ctx, recoveryLog(false)); got != 0 {
		t.Fatalf("%d unrecovered events after a drop", got)
	}

	// A restart loses the in-memory stream: recovered:false, a new epoch.
	addr := s.Addr().String()
	s.Close()
	s2 := startInProcess(t, addr)
	until(t, ctx, "the unrecovered event after a restart", recoveryLog(false)+" === 1")
	pub(s2, 1)
	until(t, ctx, "a push of the new stream", newsSeqs+` === "`+seqList(1, 23)+`,1"`)
}

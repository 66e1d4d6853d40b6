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

	"github.com/wspush/wspush/internal/testsupport"
	"github.com/wspush/wspush/server"
)

const chromium = "/usr/bin/chromium"

func startInProcess(t *testing.T, listen string) *server.Server {
	t.Helper()
	s, err := server.New(server.Config{Listen: listen, Admin: "127.0.0.1:0", Loops: 2, Logger: testsupport.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func tab(t *testing.T) context.Context {
	t.Helper()
	testsupport.NeedTool(t, chromium, "apt-get install -y chromium")
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(t.TempDir()))
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}

func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(cctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func until(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !evalJS[bool](t, ctx, "!!("+cond+")") {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (%s)\nevent log:\n%s\nrows: %s", what, cond,
				evalJS[string](t, ctx, `[...document.querySelectorAll("#log li")].map(li => li.textContent).join("\n")`),
				evalJS[string](t, ctx, newsSeqs))
		}
		time.Sleep(50 * time.Millisecond)
	}
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
	ctx := tab(t)
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
	if got := evalJS[int](t, ctx, recoveryLog(false)); got != 0 {
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

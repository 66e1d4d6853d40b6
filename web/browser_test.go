package web

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/wspush/wspush/internal/browsertest"
)

// waitFor polls the JavaScript condition on the demo page until it is true,
// and fails the test with the page's state and event log when it is not
// within browsertest.WaitTimeout.
func waitFor(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	browsertest.WaitFor(t, ctx, what, cond,
		"page state", `document.getElementById("state").textContent`,
		"event log", demoLog)
}

// demoLog is the demo page's event log, a line an event.
const demoLog = `[...document.querySelectorAll("#log li")].map(li => li.textContent).join("\n")`

// rowWith is a condition: a push row of topic with seq whose text contains text.
func rowWith(topic string, seq int, text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#messages tr[data-topic=%q][data-seq="%d"]')].some(tr => tr.textContent.includes(%q))`,
		topic, seq, text)
}

func logCount(text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("#log li")].filter(li => li.textContent.includes(%q)).length`, text)
}

// TestBrowserDemo drives the demo page in Chromium against a real server:
// subscribe, pushes from the admin API and from the page, reconnect and
// resubscribe after the server is killed and restarted, and close code 1001
// when it shuts down.
func TestBrowserDemo(t *testing.T) {
	ctx := browsertest.New(t)
	srv := startServer(t, serverBinary(t), "-client-publish")
	nowMs := func() int64 { return time.Now().UnixMilli() }

	browsertest.Do(t, ctx, chromedp.Navigate("http://"+srv.addr+"/"))
	waitFor(t, ctx, "the page to connect", `document.getElementById("state").dataset.state === "open"`)
	if got := browsertest.Eval[string](t, ctx, `document.getElementById("url").value`); got != "ws://"+srv.addr+"/ws" {
		t.Errorf("default URL = %q, want ws://%s/ws", got, srv.addr)
	}

	// The module entry point gives the same class as the classic script.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	same, err := chromedp.Run(cctx, chromedp.Evaluate[bool](`import("/wspush.mjs").then(m => m.WSPush === window.WSPush && m.default === window.WSPush)`,
		func(p *runtime.EvaluateParams) { p.AwaitPromise = new(true) }))
	cancel()
	if err != nil || !same {
		t.Errorf("import(\"/wspush.mjs\"): same class %v, error %v", same, err)
	}

	browsertest.Do(t, ctx,
		chromedp.SetValue(chromedp.CSS("#topic"), "news"),
		chromedp.Click(chromedp.CSS("#subscribe")))
	waitFor(t, ctx, "the subscribed answer", logCount("subscribed to news")+" === 1")

	if n := srv.publish("news", map[string]any{"from": "alice", "text": "hello from the admin API", "t": nowMs()}); n != 1 {
		t.Fatalf("publish reached %d subscribers, want 1", n)
	}
	waitFor(t, ctx, "the admin push in the table", rowWith("news", 1, "hello from the admin API"))
	latency := browsertest.Eval[string](t, ctx, `document.querySelector('#messages tr[data-seq="1"] td.latency').textContent`)
	if !strings.HasSuffix(latency, " ms") {
		t.Errorf("latency cell = %q, want a number of ms", latency)
	}

	// Publish from the page itself, with the pub op.
	browsertest.Do(t, ctx,
		chromedp.SetValue(chromedp.CSS("#pub-topic"), "news"),
		chromedp.SetValue(chromedp.CSS("#pub-name"), "bob"),
		chromedp.SetValue(chromedp.CSS("#pub-text"), "hi from the browser"),
		chromedp.Click(chromedp.CSS("#publish")))
	waitFor(t, ctx, "the page's own pub to come back", rowWith("news", 2, "hi from the browser"))

	srv.publish("news", map[string]any{"symbol": "WSP", "price": 101.25})
	waitFor(t, ctx, "a push without timestamp", rowWith("news", 3, "101.25"))
	if got := browsertest.Eval[string](t, ctx, `document.querySelector('#messages tr[data-seq="3"] td.latency').textContent`); got != "—" {
		t.Errorf("latency without t = %q, want —", got)
	}

	// Kill the server hard and start it again on the same ports.
	srv.kill(syscall.SIGKILL)
	waitFor(t, ctx, "the page to notice the dead server", `document.getElementById("state").dataset.state === "reconnecting"`)
	srv.start()
	waitFor(t, ctx, "the reconnect", `document.getElementById("state").dataset.state === "open" && document.getElementById("reconnects").textContent === "1"`)
	waitFor(t, ctx, "the resubscription", logCount("subscribed to news")+" === 2")
	if n := srv.publish("news", map[string]any{"from": "alice", "text": "back after a restart", "t": nowMs()}); n != 1 {
		t.Fatalf("after restart, publish reached %d subscribers, want 1", n)
	}
	waitFor(t, ctx, "a push after the restart", rowWith("news", 1, "back after a restart"))
	for _, text := range []string{"Anyone here?", "Pushes arrive live, with seq and latency."} {
		srv.publish("news", map[string]any{"from": "carol", "text": text, "t": nowMs()})
	}
	waitFor(t, ctx, "the last pushes", rowWith("news", 3, "with seq and latency"))

	saveScreenshot(t, ctx, "demo.png")

	// A graceful shutdown closes the connection with 1001, and the page says so.
	srv.kill(syscall.SIGTERM)
	waitFor(t, ctx, "close code 1001 in the page", `document.getElementById("last-close").dataset.code === "1001"`)
	waitFor(t, ctx, "close code 1001 in the event log", `document.querySelector('#log li[data-kind="close"][data-code="1001"]')`)
}

// TestBrowserPublishRefused checks that the page explains a pub that the
// server refuses because it runs without -client-publish, and the page's
// Disconnect/Connect button.
func TestBrowserPublishRefused(t *testing.T) {
	ctx := browsertest.New(t)
	srv := startServer(t, serverBinary(t))
	browsertest.Do(t, ctx, chromedp.Navigate("http://"+srv.addr+"/?topics=room"))
	waitFor(t, ctx, "the subscription from the page URL", logCount("subscribed to room")+" === 1")
	browsertest.Do(t, ctx,
		chromedp.SetValue(chromedp.CSS("#pub-text"), "will be refused"),
		chromedp.Click(chromedp.CSS("#publish")))
	waitFor(t, ctx, "the refusal notice", `!document.getElementById("notice").hidden && document.getElementById("notice").textContent.includes("-client-publish")`)
	if got := browsertest.Eval[int](t, ctx, `document.querySelectorAll("#messages tbody tr").length`); got != 0 {
		t.Errorf("%d rows in the table after a refused pub, want 0", got)
	}
	saveScreenshot(t, ctx, "refused.png")

	// Disconnect closes with 1000 and stays closed; Connect comes back with
	// the same topics.
	browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS("#connect")))
	waitFor(t, ctx, "the disconnect", `document.getElementById("state").dataset.state === "closed" && document.getElementById("last-close").dataset.code === "1000"`)
	browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS("#connect")))
	waitFor(t, ctx, "the new connection's subscription", logCount("subscribed to room")+" === 2")
}

// saveScreenshot writes the visible page to testdata/out/name.
func saveScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join("testdata", "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "out", name), shot, 0o644); err != nil {
		t.Fatal(err)
	}
}

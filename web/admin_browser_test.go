package web

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"

	"github.com/wspush/wspush/internal/browsertest"
	"github.com/wspush/wspush/internal/testsupport"
)

// adminWaitFor polls the JavaScript condition on the admin page until it is
// true, and fails with what the page shows when it is not within
// browsertest.WaitTimeout.
func adminWaitFor(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	browsertest.WaitFor(t, ctx, what, cond,
		"status", `document.getElementById("status").textContent`,
		"error", `document.getElementById("error").textContent`,
		"connections", `document.getElementById("connections").dataset.value || ""`,
		"publish result", `document.getElementById("publish-result").textContent`)
}

// shownConnections is a condition: the page's connection count is n.
func shownConnections(n int) string {
	return fmt.Sprintf(`document.getElementById("connections").dataset.value === "%d"`, n)
}

// TestBrowserAdminPage drives the admin page in Chromium against the real
// binary with an admin token: the page asks for the token, then its
// connection count follows connections the test opens and closes with
// coder/websocket, the loop table and the top topics show them, and a
// publish from the page's form reaches a subscriber.
func TestBrowserAdminPage(t *testing.T) {
	const token = "admin-page-test-token"
	ctx := browsertest.New(t)
	srv := startServer(t, serverBinary(t), "-publish-token", token, "-loops", "2")

	browsertest.Do(t, ctx, chromedp.Navigate("http://"+srv.admin+"/admin/"))
	adminWaitFor(t, ctx, "the token prompt", `!document.getElementById("auth").hidden && document.getElementById("status").dataset.status === "unauthorized"`)
	browsertest.Do(t, ctx,
		chromedp.SetValue(chromedp.CSS("#token"), "wrong"),
		chromedp.Click(chromedp.CSS("#token-use")))
	adminWaitFor(t, ctx, "the wrong token to be refused", `document.getElementById("auth-reason").textContent.includes("refused")`)
	browsertest.Do(t, ctx,
		chromedp.SetValue(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#token-use")))
	adminWaitFor(t, ctx, "the stats with the token", `document.getElementById("status").dataset.status === "ok" && document.getElementById("auth").hidden`)
	adminWaitFor(t, ctx, "no connections", shownConnections(0))

	dialCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 6
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		topics := "room-" + strconv.Itoa(i%2) // room-0 and room-1, three each
		if i == 0 {
			topics += ",news"
		}
		c, _, err := websocket.Dial(dialCtx, "ws://"+srv.addr+"/ws?topics="+topics, nil)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns[i] = c
		defer c.CloseNow()
	}
	adminWaitFor(t, ctx, "the page to count the connections", shownConnections(n))
	adminWaitFor(t, ctx, "both loops in the table", `document.querySelectorAll("#loops tbody tr").length === 2`)
	if sum := browsertest.Eval[int](t, ctx, `[...document.querySelectorAll("#loops td.connections")].reduce((a, td) => a + Number(td.textContent), 0)`); sum != n {
		t.Errorf("the loops hold %d connections in the table, want %d", sum, n)
	}
	adminWaitFor(t, ctx, "the top topics", `document.querySelector('#top-topics tr[data-topic="room-0"] td.subscribers')?.textContent === "3"`)
	if got := browsertest.Eval[string](t, ctx, `document.getElementById("subscriptions").dataset.value`); got != "7" {
		t.Errorf("subscriptions shown %q, want 7", got)
	}

	for _, c := range conns[n-2:] {
		c.Close(websocket.StatusNormalClosure, "")
	}
	adminWaitFor(t, ctx, "the page to follow the disconnects", shownConnections(n-2))
	conns[1].CloseNow() // without a close handshake: the server sees the reset
	adminWaitFor(t, ctx, "the page to follow a dropped connection", shownConnections(n-3))

	// A value that is not JSON is refused by the page before any request;
	// then a publish from the page's form reaches conns[0], subscribed to news.
	browsertest.Do(t, ctx,
		chromedp.SetValue(chromedp.CSS("#pub-topic"), "news"),
		chromedp.SetValue(chromedp.CSS("#pub-data"), `{not json`),
		chromedp.Click(chromedp.CSS("#publish")))
	adminWaitFor(t, ctx, "the page to refuse a body that is not JSON", `document.getElementById("publish-result").dataset.ok === "false"`)

	browsertest.Do(t, ctx,
		chromedp.SetValue(chromedp.CSS("#pub-data"), `{"text":"from the admin page","n":42}`),
		chromedp.Click(chromedp.CSS("#publish")))
	readCtx, cancelRead := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelRead()
	var push struct {
		Op    string // set on answers ("subscribed"...), not on pushes
		Topic string
		Seq   int
		Data  struct {
			Text string
			N    int
		}
	}
	for push.Topic != "news" || push.Op != "" { // the subscribed answers come first
		_, msg, err := conns[0].Read(readCtx)
		if err != nil {
			t.Fatalf("reading the push from the page: %v", err)
		}
		push.Op = ""
		if err := json.Unmarshal(msg, &push); err != nil {
			t.Fatalf("%s: %v", msg, err)
		}
	}
	if push.Seq != 1 || push.Data.Text != "from the admin page" || push.Data.N != 42 {
		t.Fatalf("push %+v, want seq 1 with the form's data", push)
	}
	adminWaitFor(t, ctx, "the publish result", `document.getElementById("publish-result").dataset.subscribers === "1"`)

	// A few more, so the page's rate shows them.
	for seq := 2; seq <= 4; seq++ {
		browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS("#publish")))
		adminWaitFor(t, ctx, "publish "+strconv.Itoa(seq), fmt.Sprintf(`document.getElementById("publish-result").dataset.seq === "%d"`, seq))
	}
	adminWaitFor(t, ctx, "a publish rate", `Number(document.getElementById("publishes").dataset.value) > 0`)
	adminWaitFor(t, ctx, "the push latency", `Number(document.getElementById("latency").dataset.value) > 0`)
	saveAdminScreenshot(t, ctx, "admin.png")
}

// saveAdminScreenshot writes the whole page to testdata/out/name (ignored by
// git, web/.gitignore) and logs where.
func saveAdminScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "out"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("admin page screenshot: %s", path)
}

// TestBrowserAdminPageCluster: with -broker the page shows the cluster
// broker's state, and follows it when NATS goes away (status degraded, not
// connected, the reason).
func TestBrowserAdminPageCluster(t *testing.T) {
	ctx := browsertest.New(t)
	ns := testsupport.StartNATS(t, -1, t.TempDir())
	srv := startServer(t, serverBinary(t), "-broker", ns.ClientURL())

	browsertest.Do(t, ctx, chromedp.Navigate("http://"+srv.admin+"/admin/"))
	adminWaitFor(t, ctx, "the cluster broker connected", `document.getElementById("status").dataset.status === "ok" &&
		document.getElementById("broker").textContent.includes("cluster (NATS JetStream)") &&
		document.querySelector("#broker dd.ok")?.textContent === "yes"`)

	ns.Shutdown()
	ns.WaitForShutdown()
	adminWaitFor(t, ctx, "the page to show the broker down", `document.getElementById("status").dataset.status === "degraded" &&
		document.querySelector("#broker dd.bad")?.textContent === "no"`)
	saveAdminScreenshot(t, ctx, "admin-cluster.png")
}

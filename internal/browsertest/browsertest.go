// Package browsertest drives headless Chromium (chromedp) for the tests of
// the browser clients in web/: a tab, JavaScript evaluated in it, a poll
// for a condition on the page. Both of web's test packages (web and
// web_test, whose tests run a server in process) use it. It is imported by
// tests only; without Chromium the tests skip, or fail when CI is set
// (testsupport.NeedTool).
package browsertest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wspush/wspush/internal/testsupport"
)

// ChromiumPath is where Debian's chromium package puts the browser.
const ChromiumPath = "/usr/bin/chromium"

const (
	// evalTimeout bounds one evaluation (Eval).
	evalTimeout = 10 * time.Second
	// doTimeout bounds a list of actions (Do): a navigation included.
	doTimeout = 20 * time.Second
	// WaitTimeout is how long WaitFor polls before it fails the test.
	WaitTimeout = 20 * time.Second
	// waitPoll is how often WaitFor evaluates its condition.
	waitPoll = 50 * time.Millisecond
)

// New starts headless Chromium, closed when the test ends, and returns a
// context for one tab with a 1280x860 viewport; extra options come after
// the defaults.
func New(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	testsupport.NeedTool(t, ChromiumPath, "apt-get install -y chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(ChromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(opts, extra...)...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 860)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// Eval evaluates a JavaScript expression in the page.
func Eval[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, evalTimeout)
	defer cancel()
	v, err := chromedp.Run(cctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// Do runs actions in the tab, all within doTimeout.
func Do(t testing.TB, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, doTimeout)
	defer cancel()
	if err := chromedp.Do(cctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// WaitFor polls the JavaScript condition cond until it is true, and fails
// the test when it is not within WaitTimeout, with what the page shows:
// show is pairs of a label and a JavaScript expression whose string value
// the message gives.
func WaitFor(t testing.TB, ctx context.Context, what, cond string, show ...string) {
	t.Helper()
	if len(show)%2 != 0 {
		panic("browsertest.WaitFor: show comes in label, expression pairs")
	}
	deadline := time.Now().Add(WaitTimeout)
	for !Eval[bool](t, ctx, "!!("+cond+")") {
		if time.Now().After(deadline) {
			var b strings.Builder
			fmt.Fprintf(&b, "timed out waiting for %s (%s)", what, cond)
			for i := 0; i < len(show); i += 2 {
				fmt.Fprintf(&b, "\n%s: %s", show[i], Eval[string](t, ctx, show[i+1]))
			}
			t.Fatal(b.String())
		}
		time.Sleep(waitPoll)
	}
}

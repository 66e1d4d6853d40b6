package web

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wspush/wspush/internal/testsupport"
)

// TestNodeInterop runs the Node test suite in interop/ (node --test): the
// wire protocol spoken with the ws package, wspush.js on top of ws, and the
// unit tests of wspush.js. It starts two servers, one with -client-publish
// and one without; the suite stops the first with SIGTERM at the end.
func TestNodeInterop(t *testing.T) {
	testsupport.NeedTool(t, "node", "apt-get install -y nodejs npm")
	dir, err := filepath.Abs("interop")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ws", "package.json")); err != nil {
		testsupport.NeedTool(t, "npm", "apt-get install -y npm")
		t.Log("interop/node_modules is missing: running npm ci")
		npm := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		npm.Dir = dir
		if out, err := npm.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}

	bin := serverBinary(t)
	pub := startServer(t, bin, "-client-publish")
	nopub := startServer(t, bin)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	node := exec.CommandContext(ctx, "node", "--test", "--test-reporter=tap", "--test-timeout=30000")
	node.Dir = dir
	node.Env = append(os.Environ(),
		"WSPUSH_URL=ws://"+pub.addr+"/ws",
		"WSPUSH_ADMIN=http://"+pub.admin,
		"WSPUSH_PID="+strconv.Itoa(pub.cmd.Process.Pid),
		"WSPUSH_URL_NOPUB=ws://"+nopub.addr+"/ws",
		"WSPUSH_ADMIN_NOPUB=http://"+nopub.admin, // recovery.test.mjs: a server the suite does not stop
	)
	out, err := node.CombinedOutput()
	t.Logf("node --test output:\n%s", out)
	if err != nil {
		t.Fatalf("node --test: %v", err)
	}
	// The suite must have run its tests, not skipped them.
	for _, want := range []string{"# fail 0", "# skipped 0"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("node --test output lacks %q", want)
		}
	}
	if strings.Contains(string(out), "# pass 0") {
		t.Error("node --test ran no test")
	}
	select {
	case <-pub.exited:
	case <-time.After(10 * time.Second):
		t.Error("the server did not exit after the suite's SIGTERM")
	}
}

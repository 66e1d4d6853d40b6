package web

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wspush/wspush/internal/browsertest"
	"github.com/wspush/wspush/internal/testpki"
	"github.com/wspush/wspush/internal/testsupport"
)

const certutilPath = "/usr/bin/certutil"

// trustingHome makes a home directory whose NSS database
// ($HOME/.pki/nssdb, where Chromium on Linux looks for user-trusted
// certificates) trusts pki's CA for servers, the way a Debian user adds a
// CA for Chromium (certutil, from libnss3-tools).
func trustingHome(t *testing.T, pki *testpki.PKI) string {
	t.Helper()
	testsupport.NeedTool(t, certutilPath, "apt-get install -y libnss3-tools")
	home := t.TempDir()
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(home, "ca.pem")
	if err := os.WriteFile(ca, pki.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-d", "sql:" + db, "-N", "--empty-password"},
		{"-d", "sql:" + db, "-A", "-t", "C,,", "-n", "wspush test CA", "-i", ca},
	} {
		if out, err := exec.Command(certutilPath, args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %v: %v\n%s", args, err, out)
		}
	}
	return home
}

// TestBrowserDemoOverTLS serves the demo page over https:// from the public
// port of a server with -tls-cert and checks that the page connects with
// wss:// to the same port and receives pushes. Chromium trusts the test CA
// through its NSS database: no --ignore-certificate-errors, so a
// certificate the browser would refuse fails the test.
func TestBrowserDemoOverTLS(t *testing.T) {
	pki, err := testpki.New("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	cert, key := testsupport.WriteCertPair(t, t.TempDir(), pki.CertPEM, pki.KeyPEM)
	home := trustingHome(t, pki)
	ctx := browsertest.New(t, chromedp.Env("HOME="+home))
	srv := startServer(t, serverBinary(t), "-tls-cert", cert, "-tls-key", key)

	browsertest.Do(t, ctx, chromedp.Navigate("https://"+srv.addr+"/?topics=news"))
	if got := browsertest.Eval[string](t, ctx, `location.protocol`); got != "https:" {
		t.Fatalf("page protocol %q, want https:", got)
	}
	waitFor(t, ctx, "the page to connect", `document.getElementById("state").dataset.state === "open"`)
	if got := browsertest.Eval[string](t, ctx, `document.getElementById("url").value`); got != "wss://"+srv.addr+"/ws" {
		t.Errorf("URL = %q, want wss://%s/ws", got, srv.addr)
	}
	waitFor(t, ctx, "the subscription", logCount("subscribed to news")+" === 1")
	if n := srv.publish("news", map[string]any{"from": "alice", "text": "over wss", "t": time.Now().UnixMilli()}); n != 1 {
		t.Fatalf("publish reached %d subscribers, want 1", n)
	}
	waitFor(t, ctx, "the push over wss://", rowWith("news", 1, "over wss"))
}

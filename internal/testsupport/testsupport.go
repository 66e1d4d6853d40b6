// Package testsupport holds what the tests of several packages share: a real
// NATS server with JetStream and the count of its subscriptions to a subject
// (NATSSubs), the tests' logger, an inline and a serial executor, a TCP
// forwarder that delays bytes (delayproxy.go), a stand-in TCP server
// (ServeTCP), the poll for a condition (WaitFor), a WebSocket client's read
// of a JSON message (ReadJSON), a backend's publish over the admin API
// (Publish) and its minting of tokens (Mint, WithClaims), certificate files
// for a server (WriteCertPair), a buffer a logger and a test share
// (SyncBuffer), the rule for a missing tool (NeedTool: skip, or fail on CI),
// and the child process that holds idle connections for the memory
// measurements, with the RSS reading they take (child.go, rss.go). It is
// imported by tests and the test harnesses (internal/haproxytest,
// internal/browsertest) only, never by the server itself, and imports no
// package of this module, so any package's tests can use it.
package testsupport

import (
	"log/slog"
	"os"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// StartNATS runs a NATS server with JetStream on loopback and shuts it down
// when the test ends. port -1 picks a free one; storeDir is where JetStream
// keeps its streams, so a server restarted on the same port and directory
// finds them again.
func StartNATS(t testing.TB, port int, storeDir string) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{
		ServerName: "test-nats", Host: "127.0.0.1", Port: port,
		JetStream: true, StoreDir: storeDir, NoSigs: true, NoLog: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// DebugEnv is the environment variable that turns the tests' logs up to the
// debug level: WSPUSH_TEST_DEBUG=1 go test ./server/.
const DebugEnv = "WSPUSH_TEST_DEBUG"

// Logger is the tests' logger: warnings and errors on stderr, everything
// when DebugEnv is set.
func Logger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv(DebugEnv) != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// Inline is an executor (pubsub.Executor) that runs each task at once on the
// posting goroutine: a stand-in for an event loop where only the Hub's own
// bookkeeping is under test.
type Inline struct{}

// Post runs fn now.
func (Inline) Post(fn func()) { fn() }

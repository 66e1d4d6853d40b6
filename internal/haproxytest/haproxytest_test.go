package haproxytest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wspush/wspush/internal/testsupport"
)

const ioTimeout = 10 * time.Second

// startEcho runs a TCP server that echoes each line back.
func startEcho(t *testing.T) string {
	t.Helper()
	return testsupport.ServeTCP(t, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(ioTimeout))
		_, _ = io.Copy(c, c)
	})
}

// TestPassthroughAndStop relays a line through a plain TCP frontend, then
// checks Stop ends haproxy and its frontend.
func TestPassthroughAndStop(t *testing.T) {
	h := StartFrontends(t, Frontend{Name: "tcp", Backend: startEcho(t)})
	c, err := net.DialTimeout("tcp", h.Addr("tcp"), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	fmt.Fprintf(c, "ping\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("echo through haproxy: %q, %v", line, err)
	}
	c.Close()

	h.Stop()
	select {
	case <-h.Exited():
	default:
		t.Fatal("haproxy still running after Stop")
	}
	if c, err := net.DialTimeout("tcp", h.Addr("tcp"), time.Second); err == nil {
		c.Close()
		t.Fatal("frontend still accepts after Stop")
	}
	h.Stop() // a second call (as cleanup makes) is harmless
}

// fatalRecorder is a testing.TB whose Fatal records the message and ends
// the goroutine, as testing's does, so a test can check how Start fails.
type fatalRecorder struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.msg = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *fatalRecorder) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }

// TestStartReportsHAProxyErrors checks a configuration haproxy refuses fails
// the test with haproxy's own message, and the offending line shown.
func TestStartReportsHAProxyErrors(t *testing.T) {
	Binary(t)
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := NewConfig(r)
		c.Text = "defaults\n    mode tcp\n    no-such-keyword on\n"
		Start(r, c)
	}()
	<-done
	if !strings.Contains(r.msg, "no-such-keyword") || !strings.Contains(r.msg, "haproxy -c") {
		t.Fatalf("Start failed with %q; want haproxy's complaint about no-such-keyword", r.msg)
	}
}

// TestStartReportsEarlyExit checks a haproxy that passes -c but exits at
// start (here: a frontend port already taken) fails with its output rather
// than hanging.
func TestStartReportsEarlyExit(t *testing.T) {
	Binary(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := NewConfig(r)
		c.Text = fmt.Sprintf(`defaults
    mode tcp
    timeout client 1s
    timeout server 1s
    timeout connect 1s
frontend taken
    bind %s
    default_backend b
backend b
    server s 127.0.0.1:1
`, busy.Addr())
		Start(r, c)
	}()
	select {
	case <-done:
	case <-time.After(startTimeout + 5*time.Second):
		t.Fatal("Start did not return")
	}
	if !strings.Contains(r.msg, "haproxy") || !strings.Contains(r.msg, busy.Addr().String()) {
		t.Fatalf("Start failed with %q; want haproxy's bind error", r.msg)
	}
}

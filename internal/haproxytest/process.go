package haproxytest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wspush/wspush/internal/testsupport"
)

const (
	// startTimeout bounds haproxy's start, config parsing and certificate
	// loading included, on a loaded CI machine.
	startTimeout = 20 * time.Second
	// stopTimeout is how long haproxy has to exit on SIGTERM before it is
	// killed.
	stopTimeout = 5 * time.Second
	// readyURI is answered 200 by the monitor frontend the harness adds.
	readyURI = "/haproxytest-ready"
)

// HAProxy is a running haproxy process, owned by the test that started it.
type HAProxy struct {
	cmd    *exec.Cmd
	out    *testsupport.SyncBuffer
	exited chan struct{}
	addrs  map[string]string
	stop   sync.Once
}

// Start checks c with `haproxy -c`, runs haproxy in the foreground (-db) on
// it, and returns once haproxy answers on a monitor frontend appended to
// c.Text. haproxy is stopped at t's cleanup, and its output is logged if t
// failed. Any failure to start fails t with haproxy's output.
func Start(t testing.TB, c *Config) *HAProxy {
	t.Helper()
	bin := Binary(t)
	readyBind, readyAddr := c.Listen("127.0.0.1:0")
	text := c.Text + fmt.Sprintf(`
# Added by haproxytest: answers when haproxy serves.
frontend haproxytest_ready
    mode http
    bind %s
    timeout client 10s
    monitor-uri %s
`, readyBind, readyURI)
	path := c.File("haproxy.cfg", []byte(text))
	env := os.Environ()
	for k, v := range c.Env {
		env = append(env, k+"="+v)
	}

	check := exec.Command(bin, "-c", "-f", path)
	check.Env = env
	check.ExtraFiles = c.listeners // -c resolves fd@ binds, so it needs the descriptors too
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("haproxytest: haproxy -c: %v\n%s\nconfiguration:\n%s", err, out, numbered(text))
	}

	h := &HAProxy{out: &testsupport.SyncBuffer{}, exited: make(chan struct{})}
	h.cmd = exec.Command(bin, "-db", "-f", path)
	h.cmd.Env = env
	h.cmd.Stdout, h.cmd.Stderr = h.out, h.out
	h.cmd.ExtraFiles = c.listeners
	h.cmd.WaitDelay = stopTimeout
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("haproxytest: start %s: %v", bin, err)
	}
	go func() { _ = h.cmd.Wait(); close(h.exited) }()
	t.Cleanup(func() {
		h.Stop()
		if t.Failed() {
			t.Logf("haproxy output:\n%s", h.Output())
		}
	})
	// haproxy has its copies of the sockets now.
	c.closeListeners()

	if err := h.waitReady("http://"+readyAddr+readyURI, startTimeout); err != nil {
		t.Fatalf("haproxytest: %v\nhaproxy output:\n%s", err, h.Output())
	}
	return h
}

// waitReady polls the monitor URI until it answers 200, haproxy exits or the
// timeout passes.
func (h *HAProxy) waitReady(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-h.exited:
			return fmt.Errorf("haproxy exited during start: %v", h.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("haproxy did not serve within %v (last: %v)", timeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Addr returns the address of the generated frontend named name (see
// StartFrontends).
func (h *HAProxy) Addr(name string) string {
	a, ok := h.addrs[name]
	if !ok {
		panic("haproxytest: no frontend " + name)
	}
	return a
}

// Output returns what haproxy has written so far: notices, warnings, and
// the log lines of configurations that log to stdout.
func (h *HAProxy) Output() string { return h.out.String() }

// Stop ends haproxy (SIGTERM, the hard stop that closes every connection;
// SIGKILL if it lingers) and waits for it. Cleanup calls it; calling it
// again does nothing.
func (h *HAProxy) Stop() {
	h.stop.Do(func() {
		_ = h.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.exited:
		case <-time.After(stopTimeout):
			_ = h.cmd.Process.Kill()
			<-h.exited
		}
	})
}

// Exited is closed when the haproxy process has ended.
func (h *HAProxy) Exited() <-chan struct{} { return h.exited }

// numbered prefixes lines with their numbers, as haproxy's messages cite
// them.
func numbered(text string) string {
	var sb strings.Builder
	for i, line := range strings.Split(text, "\n") {
		fmt.Fprintf(&sb, "%4d  %s\n", i+1, line)
	}
	return sb.String()
}

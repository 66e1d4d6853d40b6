package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// A server started fresh for one run (Config.ServerCmd), so that memory
// figures are not skewed by what an earlier run left behind.

type serverProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startServer runs argv and waits until every address in addrs accepts TCP.
// An address that accepts before the server is started belongs to another
// process, which would be measured in its place (the server itself fails to
// bind and exits): that is an error.
func startServer(ctx context.Context, argv []string, addrs []string, cfg *Config) (*serverProc, error) {
	if len(argv) == 0 {
		return nil, errors.New("empty server command")
	}
	for _, a := range addrs {
		if c, err := net.DialTimeout("tcp", a, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s already accepts connections before %q starts: another process holds it", a, argv[0])
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = cfg.ServerLog, cfg.ServerLog
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start server %q: %w", argv[0], err)
	}
	p := &serverProc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for _, a := range addrs {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-p.done:
				return nil, fmt.Errorf("server %q exited: %s (-v shows its output)", argv[0], cmd.ProcessState)
			case <-ctx.Done():
				p.stop()
				return nil, fmt.Errorf("waiting for the server: %w", ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				p.stop()
				return nil, fmt.Errorf("server %q does not accept on %s: %w", argv[0], a, err)
			}
		}
	}
	return p, nil
}

func (p *serverProc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the server process has ended.
func (p *serverProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, then SIGKILL after 5 s.
func (p *serverProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// serverAddrs returns the host:port of the WebSocket URLs and the admin URL.
func serverAddrs(cfg *Config) []string {
	var out []string
	for _, raw := range append(append([]string(nil), cfg.URLs...), cfg.Admin) {
		if raw == "" {
			continue
		}
		if u, err := url.Parse(raw); err == nil && u.Host != "" {
			out = append(out, u.Host)
		}
	}
	return out
}

// SplitCommand splits a command line on spaces (no quoting).
func SplitCommand(s string) []string { return strings.Fields(s) }

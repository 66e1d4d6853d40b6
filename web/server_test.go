package web

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wspush/wspush/internal/testsupport"
)

// This file starts real wspush servers for the end-to-end tests.
//
// WSPUSH_BIN, when set, names a server binary to use instead of building
// ./cmd/wspush.

// moduleRoot is the directory of the module's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("not inside the wspush module")
	}
	return filepath.Dir(gomod)
}

// serverBinary builds ./cmd/wspush into a temporary directory.
func serverBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("WSPUSH_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "wspush")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/wspush")
	cmd.Dir = moduleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/wspush: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// server is one running wspush process.
type server struct {
	t           *testing.T
	bin         string
	addr, admin string // public and admin host:port
	args        []string
	cmd         *exec.Cmd
	exited      chan struct{}
	output      testsupport.SyncBuffer
}

// startServer runs bin on fresh loopback ports with the extra args and waits
// until both ports accept connections. The process is killed at the end of
// the test.
func startServer(t *testing.T, bin string, args ...string) *server {
	t.Helper()
	s := &server{t: t, bin: bin, addr: freeAddr(t), admin: freeAddr(t), args: args}
	s.start()
	t.Cleanup(func() {
		s.kill(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("server output:\n%s", s.log())
		}
	})
	return s
}

func (s *server) Write(p []byte) (int, error) {
	return s.output.Write(p)
}

func (s *server) log() string {
	return s.output.String()
}

// start starts the process on s.addr and s.admin, retrying for a while if
// it exits at once (a port of the previous process may not be free yet).
func (s *server) start() {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		args := append([]string{"-listen", s.addr, "-admin", s.admin}, s.args...)
		s.cmd = exec.Command(s.bin, args...)
		s.cmd.Stdout, s.cmd.Stderr = s, s
		if err := s.cmd.Start(); err != nil {
			s.t.Fatalf("start %s: %v", s.bin, err)
		}
		s.exited = make(chan struct{})
		go func(cmd *exec.Cmd, exited chan struct{}) {
			cmd.Wait()
			close(exited)
		}(s.cmd, s.exited)
		if s.waitReady(deadline) {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("server %s %v did not come up; output:\n%s", s.bin, args, s.log())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitReady waits until both ports accept connections; false when the
// process exited first.
func (s *server) waitReady(deadline time.Time) bool {
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return false
		default:
		}
		if dialable(s.addr) && dialable(s.admin) {
			// Still alive a moment later: the ports are ours, not another
			// process's that took them while this one failed to listen.
			select {
			case <-s.exited:
				return false
			case <-time.After(100 * time.Millisecond):
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.kill(syscall.SIGKILL)
	return false
}

func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// kill sends sig and waits for the process to exit.
func (s *server) kill(sig syscall.Signal) {
	s.t.Helper()
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
		s.t.Errorf("server did not exit within 10s of %v", sig)
	}
}

// publish posts data to topic over the admin API and returns the number of
// subscribers the server reports.
func (s *server) publish(topic string, data any) int {
	s.t.Helper()
	body, err := json.Marshal(data)
	if err != nil {
		s.t.Fatal(err)
	}
	resp, err := http.Post("http://"+s.admin+"/publish?topic="+topic, "application/json", bytes.NewReader(body))
	if err != nil {
		s.t.Fatalf("publish: %v", err)
	}
	defer resp.Body.Close()
	var answer struct {
		Topic       string
		Seq         int
		Subscribers int
		Error       string
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != 200 {
		s.t.Fatalf("publish %s: status %d, %+v, decode error %v", topic, resp.StatusCode, answer, err)
	}
	return answer.Subscribers
}

package deploy

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wspush/wspush/server"
)

// unitExecStart is the binary path the unit runs; the checks point it at
// the test build.
const unitExecStart = "/usr/local/bin/wspush"

// exposureThreshold is the highest `systemd-analyze security` exposure the
// unit may score, times ten (its --threshold scale): 2.0, "OK".
const exposureThreshold = "20"

// unitDirectives reads the unit file's Key=Value lines; a key may repeat.
func unitDirectives(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(repoFile(unitFile))
	if err != nil {
		t.Fatal(err)
	}
	ds := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not Key=Value", unitFile, line)
		}
		ds[k] = append(ds[k], v)
	}
	return ds
}

// checkUnit checks the unit's promises (hardening, limits, stop timeout) and
// runs systemd-analyze on it where systemd is installed.
func checkUnit(t *testing.T, bin string) {
	ds := unitDirectives(t)
	for k, want := range map[string]string{
		"ExecStart": unitExecStart, "EnvironmentFile": "-/etc/wspush/env",
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
		"ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "DynamicUser": "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "LimitNOFILE": "1048576",
		"Restart": "on-failure", "KillSignal": "SIGTERM",
		// No capabilities unless the operator uncomments them for :443.
		"CapabilityBoundingSet": "", "AmbientCapabilities": "",
	} {
		if got := ds[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s: %s=%q, want %q", unitFile, k, got, want)
		}
	}
	stop, err := time.ParseDuration(strings.Join(ds["TimeoutStopSec"], ""))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	_, set := readEnvExample(t)
	shutdown := server.Defaults().ShutdownTimeout
	if v, ok := set["WSPUSH_SHUTDOWN_TIMEOUT"]; ok {
		if shutdown, err = time.ParseDuration(v); err != nil {
			t.Fatalf("%s: WSPUSH_SHUTDOWN_TIMEOUT: %v", envExample, err)
		}
	}
	// The close handshake of the last clients and the process exit need a
	// few seconds past the shutdown budget.
	if stop < shutdown+5*time.Second {
		t.Errorf("TimeoutStopSec %v leaves no margin over the shutdown timeout %v", stop, shutdown)
	}

	analyze := optionalTool(t, "systemd-analyze")
	unit := unitForBinary(t, bin)
	run(t, analyze, "verify", unit)
	if out, err := exec.Command(analyze, "security", "--offline=yes", "--threshold="+exposureThreshold, unit).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze security: exposure above %s/10: %v\n%s", exposureThreshold, err, out)
	}
}

// unitForBinary writes a copy of the unit whose ExecStart is bin, as
// systemd-analyze verify checks that the binary exists.
func unitForBinary(t *testing.T, bin string) string {
	t.Helper()
	b, err := os.ReadFile(repoFile(unitFile))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "ExecStart="+unitExecStart, "ExecStart="+bin, 1)
	path := filepath.Join(t.TempDir(), "wspush.service")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// straceCall is a system call line of `strace -f -o`: "PID name(".
var straceCall = regexp.MustCompile(`^\d+\s+([a-z0-9_]+)\(`)

// TestUnitSyscallFilter runs the server under strace through a session
// (start, a WebSocket subscriber, a publish, a /metrics scrape, SIGTERM) and
// checks every system call it made passes the unit's SystemCallFilter, as
// systemd-analyze expands it. This is where a seccomp filter would kill or
// refuse wspush under systemd; no running systemd is needed.
func TestUnitSyscallFilter(t *testing.T) {
	strace := optionalTool(t, "strace")
	analyze := optionalTool(t, "systemd-analyze")
	allowed, denied := map[string]bool{}, map[string]bool{}
	for _, f := range unitDirectives(t)["SystemCallFilter"] {
		set := allowed
		if strings.HasPrefix(f, "~") {
			set, f = denied, f[1:]
		}
		for _, name := range strings.Fields(f) {
			for _, sc := range syscallSet(t, analyze, name) {
				set[sc] = true
			}
		}
	}
	if len(allowed) == 0 {
		t.Fatal("the unit has no SystemCallFilter allow list")
	}

	bin := buildLikeDockerfile(t)
	trace := filepath.Join(t.TempDir(), "trace")
	cmd := exec.Command(strace, "-f", "-qq", "-o", trace, bin, "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0")
	cmd.Env = []string{}
	p := startBinary(t, cmd)
	p.pid = tracee(t, p.pid)
	exerciseServer(t, p)
	if err := p.wait(server.Defaults().ShutdownTimeout + 10*time.Second); err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}

	f, err := os.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	used := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if m := straceCall.FindStringSubmatch(sc.Text()); m != nil {
			used[m[1]] = true
		}
	}
	if len(used) < 20 {
		t.Fatalf("only %d system calls traced: strace output not understood", len(used))
	}
	for name := range used {
		if !allowed[name] || denied[name] {
			t.Errorf("wspush calls %s, which the unit's SystemCallFilter refuses", name)
		}
	}
	t.Logf("%d distinct system calls traced", len(used))
}

// exerciseServer drives the paths a production node runs: an upgrade with a
// subscription, a publish pushed to it, health and metrics, then SIGTERM
// with the subscriber still connected, which gets close 1001.
func exerciseServer(t *testing.T, p process) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+p.public+"/ws?topics=news", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	if _, msg, err := c.Read(ctx); err != nil || !strings.Contains(string(msg), "subscribed") {
		t.Fatalf("subscribe answer: %q, %v", msg, err)
	}
	resp, err := http.Post("http://"+p.admin+"/publish?topic=news", "application/json", strings.NewReader(`{"n":1}`))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish: %s", resp.Status)
	}
	if _, msg, err := c.Read(ctx); err != nil || !strings.Contains(string(msg), `{"n":1}`) {
		t.Fatalf("push: %q, %v", msg, err)
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		resp, err := http.Get("http://" + p.admin + path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		resp.Body.Close()
	}
	if err := syscall.Kill(p.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("after SIGTERM: %v, want close 1001", err)
	}
}

// tracee is the process strace (pid) started: its only child.
func tracee(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		t.Fatalf("strace's child: %v", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		t.Fatalf("strace has children %q, want one", f)
	}
	child, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatal(err)
	}
	return child
}

// syscallSet expands a systemd system call group (@name) or name.
func syscallSet(t *testing.T, analyze, name string) []string {
	t.Helper()
	if !strings.HasPrefix(name, "@") {
		return []string{name}
	}
	var out []string
	for _, line := range strings.Split(run(t, analyze, "syscall-filter", name), "\n")[1:] {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "@"):
			out = append(out, syscallSet(t, analyze, line)...)
		default:
			out = append(out, line)
		}
	}
	return out
}

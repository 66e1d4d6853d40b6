package deploy

import (
	"bufio"
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wspush/wspush/server"
)

const (
	dockerfile = "Dockerfile"
	unitFile   = "deploy/systemd/wspush.service"
	envExample = "deploy/systemd/env.example"
	// nonrootUID is the user of gcr.io/distroless/static-debian12:nonroot.
	nonrootUID = 65532
	// testVersion is stamped with -X main.version in the test build.
	testVersion = "deploy-test"
)

// dockerBuild is the builder stage's `go build` command and environment, as
// the Dockerfile writes them.
type dockerBuild struct {
	args []string // after "go"
	env  []string // ENV lines, KEY=VALUE
}

// readDockerBuild finds the RUN go build line and the ENV lines of the
// Dockerfile's builder stage and substitutes ${VERSION}.
func readDockerBuild(t *testing.T) dockerBuild {
	t.Helper()
	b, err := os.ReadFile(repoFile(dockerfile))
	if err != nil {
		t.Fatal(err)
	}
	var db dockerBuild
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "ENV "); ok {
			db.env = append(db.env, strings.TrimSpace(rest))
		}
		if rest, ok := strings.CutPrefix(line, "RUN go build "); ok {
			fields, err := shellFields(strings.ReplaceAll(rest, "${VERSION}", testVersion))
			if err != nil {
				t.Fatalf("%s: %v", dockerfile, err)
			}
			db.args = append([]string{"build"}, fields...)
		}
	}
	if db.args == nil {
		t.Fatalf("%s: no RUN go build line", dockerfile)
	}
	return db
}

// shellFields splits a command line on spaces, honouring double quotes: as
// much of sh as the Dockerfile's RUN line uses.
func shellFields(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inField, quoted := false, false
	for _, c := range s {
		switch {
		case c == '"':
			quoted, inField = !quoted, true
		case c == ' ' && !quoted:
			if inField {
				out = append(out, cur.String())
				cur.Reset()
				inField = false
			}
		case c == '\\' || c == '\'' || c == '$' || c == '`':
			return nil, fmt.Errorf("%q: %c needs a real shell", s, c)
		default:
			cur.WriteRune(c)
			inField = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("%q: unterminated quote", s)
	}
	if inField {
		out = append(out, cur.String())
	}
	return out, nil
}

// buildLikeDockerfile runs the Dockerfile's go build command in the
// repository root, its -o pointed into a temporary directory, and returns
// the binary's path.
func buildLikeDockerfile(t *testing.T) string {
	t.Helper()
	goTool := requiredTool(t, "go")
	db := readDockerBuild(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "wspush")
	args := append([]string(nil), db.args...)
	for i, a := range args {
		if a == "-o" && i+1 < len(args) {
			args[i+1] = bin
		}
	}
	cmd := exec.Command(goTool, args...)
	cmd.Dir = repoFile(".")
	cmd.Env = append(os.Environ(), db.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %v: %v\n%s", args, err, out)
	}
	// The distroless user must reach the binary: t.TempDir is 0700.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

// TestPackaging builds the binary as the Dockerfile does and checks it the
// way the image and the systemd unit run it.
func TestPackaging(t *testing.T) {
	bin := buildLikeDockerfile(t)
	t.Run("static", func(t *testing.T) { checkStatic(t, bin) })
	t.Run("build settings", func(t *testing.T) { checkBuildSettings(t, bin) })
	t.Run("version", func(t *testing.T) { checkVersion(t, bin) })
	t.Run("env example", func(t *testing.T) { checkEnvExample(t, bin) })
	t.Run("runs as nonroot", func(t *testing.T) { checkRunsAsNonroot(t, bin) })
	t.Run("systemd unit", func(t *testing.T) { checkUnit(t, bin) })
}

// checkStatic: distroless/static and scratch have no dynamic loader or libc.
func checkStatic(t *testing.T, bin string) {
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary has an ELF interpreter: dynamically linked")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("binary needs shared libraries %v", libs)
	}
	if f.Section(".symtab") != nil {
		t.Error("binary has a symbol table: -ldflags -s missing")
	}
}

// checkBuildSettings reads the settings go build recorded in the binary
// (with -trimpath it records no -ldflags), and the DWARF sections -w drops.
func checkBuildSettings(t *testing.T, bin string) {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	for key, want := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true"} {
		if settings[key] != want {
			t.Errorf("build setting %s = %q, want %q", key, settings[key], want)
		}
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Section(".debug_info") != nil {
		t.Error("binary has DWARF: -ldflags -w missing")
	}
}

// checkVersion: the image stamps main.version. Until cmd/wspush declares
// it and a -version flag, the linker ignores -X and there is nothing to
// check; from then on the stamped version must be printed.
func checkVersion(t *testing.T, bin string) {
	out, err := exec.Command(bin, "-version").CombinedOutput()
	if err != nil && strings.Contains(string(out), "flag provided but not defined: -version") {
		t.Skip("wspush has no -version flag yet: -X main.version is not checked")
	}
	if err != nil || !strings.Contains(string(out), testVersion) {
		t.Errorf("wspush -version: %q, %v; want %q, stamped by the Dockerfile's -X main.version", out, err, testVersion)
	}
}

// envFlag is the environment variable name `wspush -h` prints per flag.
var envFlag = regexp.MustCompile(`\(env (WSPUSH_[A-Z0-9_]+)\)`)

// envSetting is a line of the environment file, set or commented out.
var envSetting = regexp.MustCompile(`^#?(WSPUSH_[A-Z0-9_]+)=(.*)$`)

// readEnvExample returns the variables env.example mentions and those it
// sets (uncommented).
func readEnvExample(t *testing.T) (mentioned []string, set map[string]string) {
	t.Helper()
	b, err := os.ReadFile(repoFile(envExample))
	if err != nil {
		t.Fatal(err)
	}
	set = map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		m := envSetting.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		mentioned = append(mentioned, m[1])
		if !strings.HasPrefix(line, "#") {
			set[m[1]] = m[2]
		}
	}
	return mentioned, set
}

// checkEnvExample: every variable the example names is a flag of this
// binary, so an operator uncommenting a line gets what the comment says.
func checkEnvExample(t *testing.T, bin string) {
	out, err := exec.Command(bin, "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("wspush -h: %v\n%s", err, out)
	}
	known := map[string]bool{}
	for _, m := range envFlag.FindAllStringSubmatch(string(out), -1) {
		known[m[1]] = true
	}
	if len(known) == 0 {
		t.Fatalf("wspush -h lists no environment variables:\n%s", out)
	}
	mentioned, _ := readEnvExample(t)
	for _, v := range mentioned {
		if !known[v] {
			t.Errorf("%s names %s, which is no flag of wspush", envExample, v)
		}
	}
}

// checkRunsAsNonroot starts the binary as the image does: the distroless
// nonroot user (when the test runs as root), an environment holding only
// env.example's settings, the listen addresses moved to free loopback ports
// on the command line. It must come up, answer /healthz and stop cleanly on
// SIGTERM within the shutdown timeout.
func checkRunsAsNonroot(t *testing.T, bin string) {
	_, set := readEnvExample(t)
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0")
	for k, v := range set {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nonrootUID, Gid: nonrootUID}}
	}
	p := startBinary(t, cmd)
	resp, err := http.Get("http://" + p.admin + "/healthz")
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz: %s", resp.Status)
	}
	if err := syscall.Kill(p.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(server.Defaults().ShutdownTimeout + 5*time.Second); err != nil {
		t.Errorf("after SIGTERM: %v", err)
	}
}

// listening is the line wspush logs once it serves, with its addresses.
var listening = regexp.MustCompile(`msg="wspush listening" addr=(\S+) admin=(\S+)`)

// process is a wspush binary started by a test.
type process struct {
	cmd           *exec.Cmd
	pid           int                       // of wspush: cmd's, or its child's when cmd is a tracer
	public, admin string                    // host:port
	wait          func(time.Duration) error // the exit error, or an error after the duration
}

// startBinary starts cmd in its own process group and waits for its "wspush
// listening" log line; the group is killed at the end of the test.
func startBinary(t *testing.T, cmd *exec.Cmd) process {
	t.Helper()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	var logs strings.Builder // written by the scanner until done is closed
	found := make(chan []string, 1)
	done := make(chan struct{})
	var exitErr error
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1:]
			}
		}
		exitErr = cmd.Wait()
		close(done)
	}()
	kill := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // fails harmlessly once all have exited
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s: still running after SIGKILL", cmd.Path)
		}
	}
	t.Cleanup(kill)
	p := process{cmd: cmd, pid: cmd.Process.Pid}
	select {
	case addrs := <-found:
		p.public, p.admin = addrs[0], addrs[1]
	case <-done:
		t.Fatalf("wspush exited before listening: %v\n%s", exitErr, logs.String())
	case <-time.After(30 * time.Second):
		kill()
		t.Fatalf("wspush not listening after 30s\n%s", logs.String())
	}
	p.wait = func(d time.Duration) error {
		select {
		case <-done:
			return exitErr
		case <-time.After(d):
			return fmt.Errorf("still running after %v", d)
		}
	}
	return p
}

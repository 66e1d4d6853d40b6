package deploy

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/wspush/wspush/internal/testsupport"
)

// requiredTool returns the path of a tool scripts/test-deps.sh installs. A
// missing tool fails the test on CI (CI set) and skips it elsewhere, so a
// developer without it still runs the rest.
func requiredTool(t *testing.T, name string) string {
	t.Helper()
	return testsupport.NeedTool(t, name, "scripts/test-deps.sh")
}

// optionalTool returns the path of a tool the test setup does not install
// (systemd-analyze: machines without systemd have none); the test skips
// without it, on CI too.
func optionalTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not found; this check runs where it is installed: %v", name, err)
	}
	return path
}

// repoFile is the path of a file given relative to the repository root; the
// tests run in deploy/.
func repoFile(rel string) string {
	return filepath.Join("..", filepath.FromSlash(rel))
}

// run runs a command and fails the test with its output when it fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

package testsupport

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// CIEnv is the environment variable CI systems set: with it set (to
// anything), a test whose tool is missing fails instead of skipping, so CI
// never passes by running less.
const CIEnv = "CI"

// NeedTool returns the path of the program name (exec.LookPath: a name in
// PATH or a path); when there is none it fails the test if CIEnv is set and
// skips it otherwise. install says how to get the program.
func NeedTool(tb testing.TB, name, install string) string {
	tb.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	MissingTool(tb, fmt.Sprintf("%s not found; install it with: %s", name, install))
	return ""
}

// MissingTool fails the test with msg if CIEnv is set and skips it
// otherwise: for a harness that looks for its program itself.
func MissingTool(tb testing.TB, msg string) {
	tb.Helper()
	if os.Getenv(CIEnv) != "" {
		tb.Fatal(msg)
	}
	tb.Skip(msg + " (this fails instead of skipping when " + CIEnv + " is set)")
}

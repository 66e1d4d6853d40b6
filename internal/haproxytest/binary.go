package haproxytest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/wspush/wspush/internal/testsupport"
)

// binaryEnv names an environment variable overriding the haproxy binary.
const binaryEnv = "HAPROXY"

// Binary returns the path of haproxy ($HAPROXY, else haproxy in PATH or
// /usr/sbin, where Debian puts it outside a user's PATH). When there is none
// it fails the test if CI is set and skips it otherwise.
func Binary(t testing.TB) string {
	t.Helper()
	names := []string{"haproxy", "/usr/sbin/haproxy"}
	if p := os.Getenv(binaryEnv); p != "" {
		names = []string{p} // asked for: no fallback to another one
	}
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testsupport.MissingTool(t, fmt.Sprintf("haproxy not found (looked for %s); install it with scripts/test-deps.sh (apt-get install haproxy)", strings.Join(names, ", ")))
	return ""
}

package testsupport

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// RSS reads this process's resident set size from /proc/self/statm, for
// the memory measurements.
func RSS(tb testing.TB) int64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		tb.Fatalf("/proc/self/statm: %q", b)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		tb.Fatalf("/proc/self/statm: %v", err)
	}
	return pages * int64(os.Getpagesize())
}

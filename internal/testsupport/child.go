package testsupport

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
)

// A child is the test binary run again, as a process of its own, to hold
// connections to a server under measurement: the clients' memory and
// descriptors are then not counted against the server's. The parent
// (StartChild) writes counts to the child's stdin, one a line; the child
// (ChildMain) answers "ok N" once it holds N connections, keeps them, and
// exits when its stdin closes. Each package says what a connection is with
// its Holder.

// Holder opens connections until it holds want and returns how many it
// holds. The connections are the Holder's to keep until the process ends.
type Holder func(want int) (held int, err error)

// ChildMain is called first in a package's TestMain: when the environment
// variable env is set, this process is a child, newHolder is given env's
// value, and ChildMain serves the parent and exits (status 1 on an error).
// Otherwise it returns at once.
func ChildMain(env string, newHolder func(spec string) (Holder, error)) {
	spec := os.Getenv(env)
	if spec == "" {
		return
	}
	if err := serveChild(spec, newHolder, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serveChild reads counts from in and answers on out until in closes.
func serveChild(spec string, newHolder func(string) (Holder, error), in io.Reader, out io.Writer) error {
	hold, err := newHolder(spec)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		want, err := strconv.Atoi(sc.Text())
		if err != nil {
			return fmt.Errorf("count %q: %w", sc.Text(), err)
		}
		held, err := hold(want)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "ok %d\n", held)
	}
	// The Holder owns the connections (some with finalizers that close
	// them): it lives until the parent is done.
	runtime.KeepAlive(hold)
	return sc.Err()
}

// Child is the parent's handle on a child process.
type Child struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	replies *bufio.Scanner
}

// StartChild runs this test binary again, with no test to run and env
// (NAME=value pairs) added to its environment, for ChildMain to make it a
// child. The caller stops it (Stop).
func StartChild(tb testing.TB, env ...string) *Child {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	return &Child{cmd: cmd, stdin: stdin, replies: bufio.NewScanner(stdout)}
}

// Hold asks the child to hold n connections and waits until it says it
// does; false when the child stopped first (its error is on stderr).
func (c *Child) Hold(n int) bool {
	fmt.Fprintln(c.stdin, n)
	return c.replies.Scan()
}

// Stop closes the child's stdin, which ends it, and waits for it to exit.
func (c *Child) Stop() {
	c.stdin.Close()
	c.cmd.Wait()
}

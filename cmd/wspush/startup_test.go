package main

import (
	"bytes"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTwoStartedAtOnceOneServes starts two wspush processes on one port at
// the same instant: exactly one serves, the other exits with "address
// already in use" (netpoll's port lock closes the window between the port
// check and the loops' SO_REUSEPORT binds; TestSimultaneousListenersOneWins
// races it harder in one process).
func TestTwoStartedAtOnceOneServes(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "wspush")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for round := range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		type proc struct {
			cmd    *exec.Cmd
			stderr bytes.Buffer
			done   chan error
		}
		procs := []*proc{{}, {}}
		for _, p := range procs {
			p.cmd = exec.Command(bin, "-listen", addr, "-admin", "", "-loops", "2", "-log-level", "warn")
			p.cmd.Stderr = &p.stderr
			p.done = make(chan error, 1)
		}
		for _, p := range procs { // back to back: both are past their start-up within the same milliseconds
			if err := p.cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { p.done <- p.cmd.Wait() }()
		}
		// The loser exits at once; the winner serves until killed.
		var loser, winner *proc
		select {
		case <-procs[0].done:
			loser, winner = procs[0], procs[1]
		case <-procs[1].done:
			loser, winner = procs[1], procs[0]
		case <-time.After(10 * time.Second):
			for _, p := range procs {
				p.cmd.Process.Kill()
				<-p.done
			}
			t.Fatalf("round %d: both processes still running on %s after 10 s", round, addr)
		}
		if !strings.Contains(loser.stderr.String(), "address already in use") {
			t.Errorf("round %d: the process that exited said %q, want address already in use", round, loser.stderr.String())
		}
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/")
		if err != nil {
			t.Errorf("round %d: the other process does not serve: %v", round, err)
		} else {
			resp.Body.Close()
		}
		select {
		case err := <-winner.done:
			t.Errorf("round %d: both processes exited (%v): %s", round, err, winner.stderr.String())
		default:
			winner.cmd.Process.Kill()
			<-winner.done
		}
	}
}

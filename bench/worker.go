package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"time"
)

// Worker processes: the parent writes JSON lines to the child's stdin
// ({"start":spec} then {"finish":spec}); the child writes JSON lines to
// stdout: {"progress":...} every 200 ms, {"ready":true} once dialing is over,
// then {"result":...} and exits. A closed stdin aborts the child.

type workerIn struct {
	Start  *WorkerSpec `json:"start,omitempty"`
	Finish *FinishSpec `json:"finish,omitempty"`
}

type workerOut struct {
	Progress *Progress     `json:"progress,omitempty"`
	Ready    bool          `json:"ready,omitempty"`
	Result   *WorkerResult `json:"result,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// ServeWorker runs an in-process Agent driven by the parent over r and w
// (the child's stdin and stdout).
func ServeWorker(ctx context.Context, r io.Reader, w io.Writer) error {
	in := json.NewDecoder(bufio.NewReader(r))
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	emit := func(o workerOut) error {
		mu.Lock()
		defer mu.Unlock()
		return enc.Encode(o)
	}
	var msg workerIn
	if err := in.Decode(&msg); err != nil || msg.Start == nil {
		return fmt.Errorf("worker: read start: %w", errors.Join(err, errors.New("no start")))
	}
	a := NewAgent()
	defer a.Close()
	if err := a.Start(*msg.Start); err != nil {
		_ = emit(workerOut{Error: err.Error()})
		return fmt.Errorf("worker: %w", err)
	}
	cmds := make(chan workerIn, 1)
	go func() {
		defer close(cmds)
		for {
			var m workerIn
			if in.Decode(&m) != nil {
				return
			}
			cmds <- m
		}
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	ready := a.Ready()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			p := a.Progress()
			if err := emit(workerOut{Progress: &p}); err != nil {
				return fmt.Errorf("worker: write: %w", err)
			}
		case <-ready:
			ready = nil
			// totals first, so the parent sees every opened connection once ready
			p := a.Progress()
			if err := emit(workerOut{Progress: &p}); err != nil {
				return fmt.Errorf("worker: write: %w", err)
			}
			if err := emit(workerOut{Ready: true}); err != nil {
				return fmt.Errorf("worker: write: %w", err)
			}
		case m, ok := <-cmds:
			if !ok {
				return errors.New("worker: stdin closed")
			}
			if m.Finish == nil {
				continue
			}
			res, err := a.Finish(ctx, *m.Finish)
			if err != nil {
				_ = emit(workerOut{Error: err.Error()})
				return fmt.Errorf("worker: %w", err)
			}
			return emit(workerOut{Result: res})
		}
	}
}

// processWorker is a Worker running in a child process (see ServeWorker).
type processWorker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	enc   *json.Encoder
	ready chan struct{}
	res   chan *WorkerResult
	done  chan struct{} // stdout closed
	mu    sync.Mutex
	prog  Progress
	err   error
}

// startPiped starts cmd, a child process of this tool (what names it in
// errors), with pipes to its stdin and from its stdout: the parent's side of
// the worker and floor reader protocols.
func startPiped(cmd *exec.Cmd, what string) (io.WriteCloser, io.ReadCloser, error) {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, fmt.Errorf("%s stdin: %w", what, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, fmt.Errorf("%s stdout: %w", what, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", what, err)
	}
	return stdin, stdout, nil
}

// NewProcessWorker starts cmd, which must run ServeWorker on its stdin and
// stdout, and returns it as a Worker.
func NewProcessWorker(cmd *exec.Cmd) (Worker, error) {
	stdin, stdout, err := startPiped(cmd, "worker")
	if err != nil {
		return nil, err
	}
	p := &processWorker{cmd: cmd, stdin: stdin, enc: json.NewEncoder(stdin),
		ready: make(chan struct{}), res: make(chan *WorkerResult, 1), done: make(chan struct{})}
	go p.read(stdout)
	return p, nil
}

func (p *processWorker) read(r io.Reader) {
	defer close(p.done)
	dec := json.NewDecoder(bufio.NewReaderSize(r, 1<<20))
	readyClosed := false
	for {
		var o workerOut
		if err := dec.Decode(&o); err != nil {
			p.setErr(fmt.Errorf("worker output: %w", err))
			break
		}
		switch {
		case o.Error != "":
			p.setErr(errors.New("worker: " + o.Error))
		case o.Progress != nil:
			p.mu.Lock()
			p.prog = *o.Progress
			p.mu.Unlock()
		case o.Ready:
			if !readyClosed {
				readyClosed = true
				close(p.ready)
			}
		case o.Result != nil:
			p.res <- o.Result
		}
	}
	if !readyClosed {
		close(p.ready)
	}
}

func (p *processWorker) setErr(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
}

func (p *processWorker) Start(spec WorkerSpec) error {
	if err := p.enc.Encode(workerIn{Start: &spec}); err != nil {
		return fmt.Errorf("send start: %w", err)
	}
	return nil
}

func (p *processWorker) Progress() Progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.prog
}

func (p *processWorker) Ready() <-chan struct{} { return p.ready }

func (p *processWorker) Finish(ctx context.Context, fs FinishSpec) (*WorkerResult, error) {
	if err := p.enc.Encode(workerIn{Finish: &fs}); err != nil {
		return nil, fmt.Errorf("send finish: %w", err)
	}
	select {
	case r := <-p.res:
		return r, nil
	case <-p.done:
		select {
		case r := <-p.res:
			return r, nil
		default:
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		return nil, fmt.Errorf("worker ended without a result: %w", p.err)
	case <-ctx.Done():
		return nil, fmt.Errorf("worker result: %w", ctx.Err())
	}
}

func (p *processWorker) Close() error {
	p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
	}
	err := p.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return nil // a worker aborted by a closed stdin exits non-zero
	}
	return err
}

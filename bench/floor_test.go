package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

func testFloorReader() (*exec.Cmd, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), readerEnv+"=1")
	cmd.Stderr = os.Stderr
	return cmd, nil
}

func TestServerFrame(t *testing.T) {
	f := serverFrame(128)
	h, err := parseHeader(f)
	if err != nil || !h.fin || h.length != 128 || h.size+int(h.length) != len(f) {
		t.Fatalf("frame %x: header %+v, %v", f[:4], h, err)
	}
	if _, ok := payloadTime(f[h.size:]); !ok {
		t.Errorf("payload %q", f[h.size:])
	}
}

func TestFloor(t *testing.T) {
	if testing.Short() {
		t.Skip("opens sockets and a child process")
	}
	for _, writers := range []int{1, 2} {
		t.Run(fmt.Sprintf("writers=%d", writers), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cfg := FloorConfig{Conns: 200, Size: 128, Rates: []float64{20, 0}, Duration: 500 * time.Millisecond,
				Src: []string{"127.0.0.2", "127.0.0.3"}, Writers: writers, NewReader: testFloorReader}
			r, err := RunFloor(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var tbl bytes.Buffer
			r.WriteTable(&tbl)
			t.Log("\n" + tbl.String())
			if r.Conns != 200 || r.ConnectError != "" || len(r.Steps) != 2 || r.FrameBytes != 132 || r.Writers != writers {
				t.Fatalf("conns %d (%s), steps %d, frame %d, writers %d", r.Conns, r.ConnectError, len(r.Steps), r.FrameBytes, r.Writers)
			}
			paced := r.Steps[0]
			// 20 sweeps/s for 0.5 s: 10 sweeps of 200 writes, whatever the writers
			if paced.Sweeps != 10 || paced.Writes != 2000 || paced.Short != 0 || paced.Sweep == nil || paced.Sweep.Count != 10 {
				t.Errorf("paced phase %+v", paced)
			}
			if s := r.Steps[1]; s.Sweeps < 1 || s.Writes != int64(s.Sweeps)*200 || s.Rate != 0 {
				t.Errorf("back-to-back phase %+v", s)
			}
			if paced.CPUSeconds < 0 || paced.ThreadCPU < 0 || paced.ThreadCPU > paced.CPUSeconds+0.05 {
				t.Errorf("cpu: process %v, threads %v", paced.CPUSeconds, paced.ThreadCPU)
			}
			// the back-to-back phase may find full socket buffers (short writes); what was written arrives
			if r.Written == 0 || r.Read != r.Written {
				t.Errorf("written %d, read %d", r.Written, r.Read)
			}
		})
	}
}

func TestSparseAgainstBaseline(t *testing.T) {
	srv := startBaseline(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sc := SparseConfig{
		Fanout: Config{URLs: []string{srv.ws}, Admin: srv.admin, ServerPID: srv.pid, Src: []string{"127.0.0.2"},
			Conns: 50, PubRate: 10, Messages: 5, Duration: 5 * time.Second, Drain: 3 * time.Second},
		Floor:  FloorConfig{NewReader: testFloorReader},
		Rounds: 1,
	}
	r, err := RunSparse(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	var tbl bytes.Buffer
	r.WriteTable(&tbl)
	t.Log("\n" + tbl.String())
	if len(r.Rounds) != 1 || r.Target != 1.1 {
		t.Fatalf("rounds %d target %v", len(r.Rounds), r.Target)
	}
	rd := r.Rounds[0]
	// the floor runs as many sweeps of as many sockets as the fanout has messages and subscribers
	if f := rd.Floor.Steps[0]; rd.Floor.Conns != 50 || f.Rate != 10 || f.Sweeps != 5 || f.Writes != 250 {
		t.Errorf("floor %+v, conns %d", f, rd.Floor.Conns)
	}
	if rd.Fanout.Deliveries != 250 || rd.Fanout.Lost != 0 || rd.Fanout.Latency == nil {
		t.Errorf("fanout deliveries %d lost %d", rd.Fanout.Deliveries, rd.Fanout.Lost)
	}
	if rd.P99Ratio <= 0 || r.P99Ratio != rd.P99Ratio || !bytes.Contains(tbl.Bytes(), []byte("median ratio")) {
		t.Errorf("p99 ratio %v (median %v)", rd.P99Ratio, r.P99Ratio)
	}
}

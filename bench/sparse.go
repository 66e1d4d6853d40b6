package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Sparse measures a server's paced fan-out against the syscall floor in the
// same run: per round, the floor (Conns sockets, one write(2) each per
// message, at the same message rate) and then the server's fanout (Conns
// subscribers, the same rate and size, a fresh server when ServerCmd is
// set). The ratios are the targets: server CPU per million
// deliveries over the floor's CPU per million writes, and the fanout's
// latency p99 over the p99 of one floor sweep.

// SparseConfig describes a sparse run.
type SparseConfig struct {
	Fanout Config      // Scenario "fanout" with PubRate and Messages set; Conns subscribers
	Floor  FloorConfig // Rates and Duration are set from Fanout
	Rounds int
	Target float64 // the ratio both figures must stay within (the issue: 1.1)
}

// SparseRound is one floor run and one fanout run.
type SparseRound struct {
	Floor  *FloorResult `json:"floor"`
	Fanout *Result      `json:"fanout"`
	// Ratios, server over floor.
	CPURatio float64 `json:"cpu_ratio"`
	P99Ratio float64 `json:"p99_ratio"`
	P50Ratio float64 `json:"p50_ratio"`
}

// SparseResult is a sparse run.
type SparseResult struct {
	Conns  int           `json:"conns"`
	Rate   float64       `json:"messages_per_s"`
	Size   int           `json:"size"`
	Target float64       `json:"target"`
	Rounds []SparseRound `json:"rounds"`

	ServerCPUPerM float64 `json:"median_server_cpu_s_per_m_deliveries"`
	FloorCPUPerM  float64 `json:"median_floor_cpu_s_per_m_writes"`
	ServerP50     float64 `json:"median_server_p50_ms"`
	ServerP99     float64 `json:"median_server_p99_ms"`
	SweepP50      float64 `json:"median_floor_sweep_p50_ms"`
	SweepP99      float64 `json:"median_floor_sweep_p99_ms"`
	CPURatio      float64 `json:"median_cpu_ratio"`
	P99Ratio      float64 `json:"median_p99_ratio"`
	P50Ratio      float64 `json:"median_p50_ratio"`
}

// RunSparse runs the floor and the fanout alternately.
func RunSparse(ctx context.Context, sc SparseConfig) (*SparseResult, error) {
	fc := sc.Fanout
	fc.Scenario = "fanout"
	if fc.PubRate <= 0 || fc.Messages <= 0 {
		return nil, errors.New("sparse: needs a message rate and a message count")
	}
	if fc.ServerPID <= 0 && len(fc.ServerCmd) == 0 {
		return nil, errors.New("sparse: the server's CPU needs -server-pid or -server-cmd")
	}
	if fc.Topics <= 0 {
		fc.Topics = 1
	}
	if fc.Size <= 0 {
		fc.Size = 128
	}
	fl := sc.Floor
	fl.Size = fc.Size
	// one sweep per message to every subscriber: with T topics a message reaches Conns/T
	fl.Conns = fc.Conns / fc.Topics
	fl.Rates = []float64{fc.PubRate}
	fl.Duration = time.Duration(float64(fc.Messages) / fc.PubRate * float64(time.Second))
	if fl.Src == nil {
		fl.Src = fc.Src
	}
	if sc.Rounds <= 0 {
		sc.Rounds = 1
	}
	if sc.Target <= 0 {
		sc.Target = 1.1
	}
	out := &SparseResult{Conns: fc.Conns, Rate: fc.PubRate, Size: fc.Size, Target: sc.Target}
	for i := 0; i < sc.Rounds; i++ {
		f, err := RunFloor(ctx, fl)
		if err != nil {
			return out, fmt.Errorf("round %d, floor: %w", i+1, err)
		}
		sleepCtx(ctx, time.Second)
		cfg := fc
		cfg.Label = fmt.Sprintf("server#%d", i+1)
		r, err := Run(ctx, cfg)
		if err != nil {
			return out, fmt.Errorf("round %d, fanout: %w", i+1, err)
		}
		sleepCtx(ctx, time.Second)
		rd := SparseRound{Floor: f, Fanout: r}
		if len(f.Steps) > 0 && f.Steps[0].CPUPerMWrites > 0 && r.Server != nil {
			rd.CPURatio = r.Server.CPUPerMDeliv / f.Steps[0].CPUPerMWrites
		}
		if len(f.Steps) > 0 && f.Steps[0].Sweep != nil && r.Latency != nil {
			rd.P99Ratio = r.Latency.P99 / f.Steps[0].Sweep.P99
			rd.P50Ratio = r.Latency.P50 / f.Steps[0].Sweep.P50
		}
		out.Rounds = append(out.Rounds, rd)
	}
	out.summarize()
	return out, nil
}

func (s *SparseResult) summarize() {
	var scpu, fcpu, sp50, sp99, wp50, wp99, cr, pr, p5r []float64
	for _, r := range s.Rounds {
		if len(r.Floor.Steps) > 0 {
			st := r.Floor.Steps[0]
			fcpu = append(fcpu, st.CPUPerMWrites)
			if st.Sweep != nil {
				wp50, wp99 = append(wp50, st.Sweep.P50), append(wp99, st.Sweep.P99)
			}
		}
		if r.Fanout.Server != nil {
			scpu = append(scpu, r.Fanout.Server.CPUPerMDeliv)
		}
		if l := r.Fanout.Latency; l != nil {
			sp50, sp99 = append(sp50, l.P50), append(sp99, l.P99)
		}
		cr, pr, p5r = append(cr, r.CPURatio), append(pr, r.P99Ratio), append(p5r, r.P50Ratio)
	}
	s.ServerCPUPerM, s.FloorCPUPerM = median(scpu), median(fcpu)
	s.ServerP50, s.ServerP99, s.SweepP50, s.SweepP99 = median(sp50), median(sp99), median(wp50), median(wp99)
	s.CPURatio, s.P99Ratio, s.P50Ratio = median(cr), median(pr), median(p5r)
}

// WriteTable writes the side-by-side figures and the verdicts.
func (s *SparseResult) WriteTable(w io.Writer) {
	for _, r := range s.Rounds {
		r.Floor.WriteTable(w)
		r.Fanout.WriteTable(w)
	}
	fmt.Fprintf(w, "sparse: %d subscribers, %g messages/s, %d B; %d rounds (floor, then server)\n", s.Conns, s.Rate, s.Size, len(s.Rounds))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "figure\tserver\tfloor\tratio per round\tmedian ratio\ttarget\t\n")
	verdict := func(r float64) string {
		if r > 0 && r <= s.Target {
			return fmt.Sprintf("<= %.2f met", s.Target)
		}
		return fmt.Sprintf("<= %.2f MISSED", s.Target)
	}
	per := func(get func(SparseRound) float64) string {
		out := ""
		for i, r := range s.Rounds {
			if i > 0 {
				out += " "
			}
			out += fmt.Sprintf("%.2f", get(r))
		}
		return out
	}
	fmt.Fprintf(tw, "CPU s per M deliveries (floor: per M writes)\t%.2f\t%.2f\t%s\t%.2f\t%s\t\n", s.ServerCPUPerM, s.FloorCPUPerM,
		per(func(r SparseRound) float64 { return r.CPURatio }), s.CPURatio, verdict(s.CPURatio))
	fmt.Fprintf(tw, "latency p99 (floor: one sweep's p99), ms\t%.1f\t%.1f\t%s\t%.2f\t%s\t\n", s.ServerP99, s.SweepP99,
		per(func(r SparseRound) float64 { return r.P99Ratio }), s.P99Ratio, verdict(s.P99Ratio))
	fmt.Fprintf(tw, "latency p50 (floor: one sweep's p50), ms\t%.1f\t%.1f\t%s\t%.2f\t\t\n", s.ServerP50, s.SweepP50,
		per(func(r SparseRound) float64 { return r.P50Ratio }), s.P50Ratio)
	tw.Flush()
}

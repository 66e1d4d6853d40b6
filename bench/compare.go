package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"
)

// Comparison is the same scenario run against two targets, alternating
// A B A B, with the ratio A/B of every figure per round and the medians.
type Comparison struct {
	Scenario string          `json:"scenario"`
	Rounds   int             `json:"rounds"`
	A        []*Result       `json:"a"`
	B        []*Result       `json:"b"`
	Figures  []CompareFigure `json:"figures"`
}

// CompareFigure is one figure over the rounds.
type CompareFigure struct {
	Name        string    `json:"name"`
	Unit        string    `json:"unit"`
	Better      string    `json:"better"`
	A           []float64 `json:"a"`
	B           []float64 `json:"b"`
	Ratios      []float64 `json:"ratios"` // A/B per round (0 when B is 0)
	MedianA     float64   `json:"median_a"`
	MedianB     float64   `json:"median_b"`
	MedianRatio float64   `json:"median_ratio"`
}

// Compare runs cfgA and cfgB alternately, rounds times each.
func Compare(ctx context.Context, cfgA, cfgB Config, rounds int) (*Comparison, error) {
	if rounds <= 0 {
		rounds = 1
	}
	if cfgA.Label == "" {
		cfgA.Label = "A"
	}
	if cfgB.Label == "" {
		cfgB.Label = "B"
	}
	for _, c := range []*Config{&cfgA, &cfgB} {
		if c.Log == nil {
			c.Log = slog.New(slog.DiscardHandler)
		}
	}
	c := &Comparison{Scenario: cfgA.Scenario, Rounds: rounds}
	for i := 0; i < rounds; i++ {
		for side, cfg := range []Config{cfgA, cfgB} {
			cfg.Label = fmt.Sprintf("%s#%d", cfg.Label, i+1)
			r, err := Run(ctx, cfg)
			if err != nil {
				return c, fmt.Errorf("round %d, %s: %w", i+1, cfg.Label, err)
			}
			if side == 0 {
				c.A = append(c.A, r)
			} else {
				c.B = append(c.B, r)
			}
			cfg.Log.Info("run done", "label", cfg.Label, "elapsed_s", r.Elapsed)
			sleepCtx(ctx, time.Second) // let the closes settle between runs
		}
	}
	c.tabulate()
	return c, nil
}

func (c *Comparison) tabulate() {
	index := map[string]int{}
	for i := range c.A {
		fa := c.A[i].Figures()
		fb := map[string]float64{}
		for _, f := range c.B[i].Figures() {
			fb[f.Name] = f.Value
		}
		for _, f := range fa {
			b, ok := fb[f.Name]
			if !ok {
				continue
			}
			j, seen := index[f.Name]
			if !seen {
				j = len(c.Figures)
				index[f.Name] = j
				c.Figures = append(c.Figures, CompareFigure{Name: f.Name, Unit: f.Unit, Better: f.Better})
			}
			cf := &c.Figures[j]
			cf.A = append(cf.A, f.Value)
			cf.B = append(cf.B, b)
			r := 0.0
			if b != 0 {
				r = f.Value / b
			}
			cf.Ratios = append(cf.Ratios, r)
		}
	}
	for i := range c.Figures {
		f := &c.Figures[i]
		f.MedianA, f.MedianB, f.MedianRatio = median(f.A), median(f.B), median(f.Ratios)
	}
}

// WriteTable writes the figures of both targets and their ratios.
func (c *Comparison) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "compare %s, %d rounds (A/B per round, median)\t\t\t\t\t\n", c.Scenario, c.Rounds)
	fmt.Fprintf(tw, "figure\tunit\tmedian A\tmedian B\tA/B per round\tmedian A/B\t\n")
	for _, f := range c.Figures {
		rs := ""
		for i, r := range f.Ratios {
			if i > 0 {
				rs += " "
			}
			rs += fmt.Sprintf("%.2f", r)
		}
		fmt.Fprintf(tw, "%s (%s better)\t%s\t%s\t%s\t%s\t%.2f\t\n", f.Name, f.Better, f.Unit, fmtNum(f.MedianA), fmtNum(f.MedianB), rs, f.MedianRatio)
	}
	tw.Flush()
}

func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100 || v <= -100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1 || v <= -1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

package main

import (
	"testing"
	"time"
)

func TestParseCurveFlags(t *testing.T) {
	tests := []struct {
		name       string
		cmd        string
		args       []string
		publishers int
		steps      []float64
		wantErr    bool
	}{
		{"curve defaults", "curve", nil, 32, []float64{10e3, 25e3, 50e3, 100e3, 200e3, 300e3, 500e3, 1e6}, false},
		{"curve own publishers and steps", "curve", []string{"-publishers", "8", "-steps", "50k,10k"}, 8, []float64{10e3, 50e3}, false},
		{"compare curve", "compare", []string{"-scenario", "curve", "-steps", "1M"}, 32, []float64{1e6}, false},
		{"fanout keeps 4 publishers", "fanout", nil, 4, nil, false},
		{"bad step", "curve", []string{"-steps", "fast"}, 0, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parse(tt.cmd, tt.args)
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.cfg.Publishers != tt.publishers {
				t.Errorf("publishers %d, want %d", f.cfg.Publishers, tt.publishers)
			}
			if tt.steps != nil {
				if len(f.cfg.Steps) != len(tt.steps) {
					t.Fatalf("steps %v, want %v", f.cfg.Steps, tt.steps)
				}
				for i := range tt.steps {
					if f.cfg.Steps[i] != tt.steps[i] {
						t.Errorf("steps %v, want %v", f.cfg.Steps, tt.steps)
					}
				}
			}
			if tt.cmd == "curve" && (f.cfg.StepDuration != 5*time.Second || f.cfg.KneeP99 != 150*time.Millisecond || f.cfg.StopAfter != 1) {
				t.Errorf("curve defaults: %v %v %d", f.cfg.StepDuration, f.cfg.KneeP99, f.cfg.StopAfter)
			}
		})
	}
}

package defaults

import (
	"log/slog"
	"testing"
	"time"
)

type config struct {
	Addr    string
	N       int
	Zero    int // its default is 0: stays 0
	Wait    time.Duration
	On      bool
	List    []string
	Logger  *slog.Logger
	private int
}

func TestFill(t *testing.T) {
	logger := slog.Default()
	d := config{Addr: ":1", N: 5, Wait: time.Second, On: true, List: []string{"a"}, Logger: logger, private: 9}
	tests := []struct {
		name    string
		in, out config
	}{
		{"zero fields take the defaults but strings, bools and slices",
			config{}, config{N: 5, Wait: time.Second, Logger: logger}},
		{"negative numbers take the defaults",
			config{N: -1, Wait: -time.Second}, config{N: 5, Wait: time.Second, Logger: logger}},
		{"set fields stay",
			config{Addr: "x", N: 2, Zero: 3, Wait: time.Millisecond, List: []string{}},
			config{Addr: "x", N: 2, Zero: 3, Wait: time.Millisecond, List: []string{}, Logger: logger}},
	}
	for _, tt := range tests {
		c := tt.in
		Fill(&c, d)
		if c.Addr != tt.out.Addr || c.N != tt.out.N || c.Zero != tt.out.Zero || c.Wait != tt.out.Wait ||
			c.On != tt.out.On || (c.List == nil) != (tt.out.List == nil) || c.Logger != tt.out.Logger || c.private != 0 {
			t.Errorf("%s: got %+v, want %+v", tt.name, c, tt.out)
		}
	}
}

package main

import (
	"flag"
	"testing"
)

func TestEnvFillsFlagsNotGiven(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    string // -max-buffered after parsing
		wantErr bool
	}{
		{"default", nil, nil, "1024", false},
		{"from env", map[string]string{"WSPUSH_MAX_BUFFERED": "2048"}, nil, "2048", false},
		{"flag wins", map[string]string{"WSPUSH_MAX_BUFFERED": "2048"}, []string{"-max-buffered", "4096"}, "4096", false},
		{"bad env", map[string]string{"WSPUSH_MAX_BUFFERED": "lots"}, nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			v := fs.Int("max-buffered", 1024, "")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := applyEnv(fs)
			if (err != nil) != tt.wantErr {
				t.Fatalf("applyEnv: %v, want error %v", err, tt.wantErr)
			}
			if err == nil && fs.Lookup("max-buffered").Value.String() != tt.want {
				t.Fatalf("max-buffered %d, want %s", *v, tt.want)
			}
		})
	}
	if envName("handshake-timeout") != "WSPUSH_HANDSHAKE_TIMEOUT" {
		t.Fatal(envName("handshake-timeout"))
	}
}
